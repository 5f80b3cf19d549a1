"""The whole answer: a draft (rag.answer), stopped by the decision's gates while drafting,
checked by the verifier (rag.verify), then the answer-or-abstain decision (rag.decision).

`Pipeline.build` wires them as `rag ask`, the web UI and the evaluations use them: the
relevance gate calibrated for the index's embedder and, with a reader, the reader's own
calibrated policy (`reader.json`), whose `keep_margin` is also the gate before generating.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from rag import conversation, decision, verify
from rag.answer import Answer, AnswerConfig, Answerer, Delta, Draft, Drafting, Event, final
from rag.conversation import Condenser, Turn
from rag.decision import ABSTAIN_BELOW, Gate, Policy
from rag.generate import backends
from rag.generate import citations as cites
from rag.generate.backends import Generator
from rag.index import Index
from rag.reader import Reader, SpanReader
from rag.retrieve import Hit
from rag.verify import Verifier, check, support


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
        drop sentences), the policy keeps a draft when its answering sentence is supported, so the
        draft is shown sentence by sentence once that one is checked (`Lead`), and the decided
        text in one piece when it is not kept (strict mode, which rewrites it, waits for the
        whole draft). Decisions made before generating (no relevant passage, no answer the reader could
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
        return decision.decide(answer, self.verifier, self._policy, self.strict)

    @property
    def _policy(self) -> Policy | None:
        return self.policy if self.answerer.reader is not None else None

    def _finished(self, items: Iterator[Draft], start: float) -> Iterator[Event]:
        """The draft's pieces as they come when the decision cannot replace them; its sentences
        once checked when its first one decides (`decision.by_lead`); else the decided text in one
        piece (see `stream`). Then the decided Answer, with `first_text_s` timed from `start`."""
        live = not decision.replaceable(self._policy, self.strict, self.verifier)
        by_lead = self.verifier is not None and decision.by_lead(self._policy, self.strict)
        trim, lead, first, shown = Trimmed(), None, None, ""
        for item in items:
            if isinstance(item, Drafting):
                lead = Lead(item, self.verifier, self._policy) if by_lead and self.verifier and self._policy else None
                continue
            if isinstance(item, Delta):
                piece = trim.add(item.text) if live else lead.add(item.text) if lead else ""
                if piece:
                    first, shown = first or time.perf_counter(), shown + piece
                    yield Delta(piece)
                continue
            answer = self.finish(item)
            if not live and answer.answer.startswith(shown) and answer.answer[len(shown):]:
                first = first or time.perf_counter()
                yield Delta(answer.answer[len(shown):])
            took = round((first or time.perf_counter()) - start, 3)
            yield replace(answer, timings=answer.timings | {"first_text_s": took})


class Lead:
    """A draft shown sentence by sentence (rag.decision.by_lead): nothing until the sentence that
    answers (`rag.decision.answering`: the first, or a how-to draft's first step giving code) is
    complete and checked; if the verifier supports it (and it is no refusal) the draft will be
    kept, so the sentences up to it and each one completed after it are shown at once; if not,
    nothing of the draft is. A sentence is complete once the next one has begun, so its markers
    are in."""

    def __init__(self, drafting: Drafting, verifier: Verifier, policy: Policy) -> None:
        self.drafting, self.verifier, self.policy = drafting, verifier, policy
        self.text, self.shown = "", 0
        self.kept: bool | None = None  # None until the answering sentence is checked

    def add(self, piece: str) -> str:
        self.text = (self.text + piece).lstrip()
        if self.kept is False:
            return ""
        end, found = self.shown, cites.spans(self.text)
        for (_, stop), (following, _) in itertools.pairwise(found):
            if stop <= self.shown:
                continue
            if self.text.startswith("[", following):  # its markers may go on
                break
            end = len(self.text[:stop].rstrip())
            if self.kept is None:
                parsed = cites.parse(self.text[:end], self.drafting.passages).sentences
                lead = decision.answering(self.drafting.question, parsed)
                if lead is None:  # a how-to draft's steps before its first code: wait for it
                    end = self.shown
                    continue
                self.kept = self._supported(self.text[:end], parsed[lead].text)
                if not self.kept:
                    return ""
        piece, self.shown = self.text[self.shown:end], max(end, self.shown)
        return piece

    def _supported(self, raw: str, lead: str) -> bool:
        """As `decision.decide` will judge the whole draft: no refusal, the answering sentence supported
        and not outranked by the reader's span."""
        asked, passages, verifier = self.drafting.question, self.drafting.passages, self.verifier
        return (not decision.refused(raw) and support(verifier, asked, lead, passages) >= verifier.threshold
                and not decision.outranked(self.policy, verifier, asked, lead, passages, self.drafting.evidence))


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
