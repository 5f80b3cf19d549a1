"""The whole answer: a draft (rag.answer), stopped by the decision's gates while drafting,
checked by the verifier (rag.verify), then the answer-or-abstain decision (rag.decision).

`Pipeline.build` wires them as `rag ask`, the web UI and the evaluations use them: the
relevance gate calibrated for the index's embedder and, with a reader, the reader's own
calibrated policy (`reader.json`), whose `keep_margin` is also the gate before generating.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from rag import conversation, decision, verify
from rag.answer import Answer, AnswerConfig, Answerer, Delta, Event, final
from rag.conversation import Condenser, Turn
from rag.decision import ABSTAIN_BELOW, Gate, Policy
from rag.generate import backends
from rag.generate.backends import Generator
from rag.index import Index
from rag.reader import Reader, SpanReader
from rag.retrieve import Hit
from rag.verify import Verifier, check


class Pipeline:
    """`answerer`'s drafts, checked by `verifier` (None: unchecked) and decided by `policy`
    (None: the draft as it is, which is how a generator without a reader answers); a follow-up
    is first rewritten as a standalone question by `condenser` (None: the rule condenser)."""

    def __init__(self, answerer: Answerer, verifier: Verifier | None = None, policy: Policy | None = None,
                 strict: bool = False, condenser: Condenser | None = None) -> None:
        self.answerer = answerer
        self.verifier = verifier
        self.policy = policy
        self.strict = strict
        self.condenser = condenser or conversation.RuleCondenser()

    @classmethod
    def default(cls, index: Index, strict: bool = False) -> Pipeline:
        """The project's shipped generator (with its adapter), reader and verifier over `index`."""
        return cls.build(index, backends.create(backends.GeneratorSpec()), reader=Reader(), verifier=verify.load(),
                         strict=strict)

    @classmethod
    def build(cls, index: Index, generator: Generator | None, config: AnswerConfig | None = None,
              reader: SpanReader | None = None, verifier: Verifier | None = None, strict: bool = False,
              mode: str = "hybrid", rerank: bool = False,
              condenser: str = conversation.DEFAULT_CONDENSER) -> Pipeline:
        """The pipeline `rag ask`, the web UI and the evaluations use: `index` searched by `mode`
        (reranked if asked), the relevance gate calibrated for its embedder, with a reader, the
        reader's calibrated policy, and follow-ups rewritten by the condenser so named."""
        retriever = index.live(mode, rerank)
        policy = Policy(**reader.policy) if reader is not None else None
        gate = Gate(ABSTAIN_BELOW.get(retriever.embedder), policy.keep_margin if policy else None)
        return cls(Answerer(retriever, generator, config, reader, gate), verifier, policy, strict,
                   conversation.make(condenser, generator))

    @property
    def name(self) -> str:
        return self.answerer.name

    def ask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        return final(self.stream(question, history))

    def ask_over(self, question: str, hits: list[Hit], gate: bool = True) -> Answer:
        return final(self.stream_over(question, hits, gate))

    def stream(self, question: str, history: Sequence[Turn] = ()) -> Iterator[Event]:
        """Text pieces (`Delta`) that together are the final answer's text, then the final Answer.

        No text is shown that is later taken back. Where the decision cannot change the draft
        (`decision.replaceable`: no policy and not strict, a generator without a reader), the
        draft is the answer and its pieces are shown as they are generated. Where it can (a
        reader's policy may put its span or an abstention in the draft's place; strict mode may
        drop sentences), the text is shown once decided: the policy keeps a draft only when every
        sentence is supported, so no sentence of it is final before the last one is checked.
        Decisions made before generating (no relevant passage, no answer the reader could
        find) are shown at once, as no generation follows them. The cost is the wait for the
        draft and its check before the first text (`Answer.timings["first_text_s"]`,
        benchmarks/answer.py --pipeline); the replaced draft stays in `Answer.draft`.

        After a `history`, the question answered is the standalone one the condenser writes
        (`Answer.question`), and `Answer.asked` keeps the user's words when they differ."""
        if not question.strip():
            raise ValueError("the question is empty")
        start = time.perf_counter()
        standalone = conversation.resolve(question, history, self.condenser)
        took = {"condense_s": round(time.perf_counter() - start, 4)} if history else {}
        for item in self._finished(self.answerer.stream(standalone), start):
            if isinstance(item, Answer):
                item = replace(item, asked=question if standalone != question else None, timings=item.timings | took)
            yield item

    def stream_over(self, question: str, hits: list[Hit], gate: bool = True) -> Iterator[Event]:
        yield from self._finished(self.answerer.stream_over(question, hits, gate=gate), time.perf_counter())

    def finish(self, answer: Answer) -> Answer:
        """A draft checked and decided."""
        if self.verifier is not None:
            answer = check(answer, self.verifier)
        return decision.decide(answer, self.verifier, self._policy, self._strict)

    @property
    def _policy(self) -> Policy | None:
        return self.policy if self.answerer.reader is not None else None

    @property
    def _strict(self) -> bool:
        return self.strict and self.policy is None

    def _finished(self, items: Iterator[Event], start: float) -> Iterator[Event]:
        """The draft's pieces as they come when the decision cannot replace them, else the decided
        text in one piece (see `stream`); then the decided Answer, with `first_text_s` timed from `start`."""
        live = not decision.replaceable(self._policy, self._strict, self.verifier)
        trim, first = Trimmed(), None
        for item in items:
            if isinstance(item, Delta):
                if live and (piece := trim.add(item.text)):
                    first = first or time.perf_counter()
                    yield Delta(piece)
                continue
            answer = self.finish(item)
            if not live and answer.answer:
                first = time.perf_counter()
                yield Delta(answer.answer)
            shown = round((first or time.perf_counter()) - start, 3)
            yield replace(answer, timings=answer.timings | {"first_text_s": shown})


class Trimmed:
    """Pieces passed on as the stripped whole they make (`Answerer` strips the draft's text):
    leading whitespace dropped, trailing whitespace held until more text follows it."""

    def __init__(self) -> None:
        self.started, self.held = False, ""

    def add(self, piece: str) -> str:
        text = self.held + piece
        if not self.started:
            text = text.lstrip()
        shown = text.rstrip()
        self.held = text[len(shown):]
        self.started = self.started or bool(shown)
        return shown
