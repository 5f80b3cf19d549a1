"""The whole answer: a draft (rag.answer), stopped by the decision's gates while drafting,
checked by the verifier (rag.verify), then the answer-or-abstain decision (rag.decision).

`Pipeline.build` wires them as `rag ask`, the web UI and the evaluations use them: the
relevance gate calibrated for the index's embedder and, with a reader, the reader's own
calibrated policy (`reader.json`), whose `keep_margin` is also the gate before generating.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from rag import conversation, decision, verify
from rag.answer import Answer, AnswerConfig, Answerer, Event, final
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
        """The draft's text pieces as they come, then the final Answer (whose text may differ
        from the draft's: a span in its place, or an abstention). After a `history`, the
        question answered is the standalone one the condenser writes (`Answer.question`), and
        `Answer.asked` keeps the user's words when they differ."""
        if not question.strip():
            raise ValueError("the question is empty")
        standalone = conversation.resolve(question, history, self.condenser)
        for item in self._finished(self.answerer.stream(standalone)):
            yield replace(item, asked=question) if isinstance(item, Answer) and standalone != question else item

    def stream_over(self, question: str, hits: list[Hit], gate: bool = True) -> Iterator[Event]:
        yield from self._finished(self.answerer.stream_over(question, hits, gate=gate))

    def finish(self, answer: Answer) -> Answer:
        """A draft checked and decided."""
        if self.verifier is not None:
            answer = check(answer, self.verifier)
        policy = self.policy if self.answerer.reader is not None else None
        return decision.decide(answer, self.verifier, policy, self.strict and self.policy is None)

    def _finished(self, items: Iterator[Event]) -> Iterator[Event]:
        for item in items:
            yield self.finish(item) if isinstance(item, Answer) else item
