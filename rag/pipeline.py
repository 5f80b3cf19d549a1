"""The whole answer: a draft (rag.answer), checked by the verifier (rag.verify), then the
answer-or-abstain decision.

A 135M generator is poor at three jobs: finding the answer's span, choosing the citation and
deciding whether to refuse. The reader finds the span, the citation is corrected to the
passage holding the answer (rag.generate.citations, rag.verify), and the decision is made
here from signals that can be calibrated, not left to the model:

1. retrieval: no passage relevant enough -> abstain before generating (`no_relevant_passages`);
   the reader's best margin below `keep_margin` -> abstain before generating too (no draft
   could be kept), with `reader_found_no_answer`;
2. the draft is kept when the verifier finds every sentence supported (and the reader's best
   span beats its passage's "no answer" score by at least `keep_margin`, as step 1 made sure);
   with `agree`, it must also contain the reader's span when that span is strong enough to
   answer (a supported draft naming another value than the span is usually the wrong cell);
3. else the reader's span is the answer, cited to its passage, when its margin is at least
   `span_margin` and the verifier supports it (a refusal or an unsupported draft replaced);
4. else abstain, naming the signal that decided: `model_abstained` (the model refused and the
   span was too weak), `unsupported_answer` (the verifier rejected the draft, and the span was
   too weak or rejected too); the reader alone (no generator) says `reader_found_no_answer`.

The thresholds are chosen on HaluEval dev rows by `benchmarks/decision.py` and written into
the reader's own `reader.json` ("policy") and model card, so a retrained reader brings its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from rag import conversation, verify
from rag.answer import (
    ABSTAIN_BELOW,
    GENERATOR,
    MODEL_ABSTAINED,
    NO_PASSAGES,
    READER,
    READER_NO_ANSWER,
    Answer,
    AnswerConfig,
    Answerer,
    Event,
    Evidence,
    final,
)
from rag.conversation import Condenser, Turn
from rag.generate import backends
from rag.generate import citations as cites
from rag.generate.backends import Generator
from rag.generate.prompt import ABSTAIN
from rag.index import Index
from rag.reader import Reader, SpanReader
from rag.retrieve import Hit
from rag.verify import UNSUPPORTED_ANSWER, Verifier, check, claim

# What each abstain_reason means, in words the CLI and the web UI show.
REASONS = {NO_PASSAGES: "no passage is close enough to the question",
           READER_NO_ANSWER: "the reader found no answer in the passages",
           MODEL_ABSTAINED: "the generator said the passages do not answer it",
           UNSUPPORTED_ANSWER: "the verifier found no answer the passages support"}


@dataclass(frozen=True)
class Policy:
    keep_margin: float = 0.0  # a supported draft is kept from this reader margin up
    span_margin: float = 2.0  # the reader's span answers from this margin up (if the verifier supports it)
    agree: bool = False  # keep a supported draft only if it contains a span strong enough to answer



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
        return cls.build(index, backends.make(), reader=Reader(), verifier=verify.load(), strict=strict)

    @classmethod
    def build(cls, index: Index, generator: Generator | None, config: AnswerConfig | None = None,
              reader: SpanReader | None = None, verifier: Verifier | None = None, strict: bool = False,
              mode: str = "hybrid", rerank: bool = False,
              condenser: str = conversation.DEFAULT_CONDENSER) -> Pipeline:
        """The pipeline `rag ask`, the web UI and the evaluations use: `index` searched by `mode`
        (reranked if asked), the relevance gate calibrated for its embedder, with a reader, the
        reader's calibrated policy, and follow-ups rewritten by the condenser so named."""
        retriever = index.live(mode, rerank)
        config = config or AnswerConfig()
        if config.min_dense_score is None:
            config = replace(config, min_dense_score=ABSTAIN_BELOW.get(retriever.embedder))
        policy = Policy(**reader.policy) if reader is not None else None
        if policy is not None:
            config = replace(config, min_margin=policy.keep_margin)
        return cls(Answerer(retriever, generator, config, reader), verifier, policy, strict,
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
            answer = check(answer, self.verifier, self.strict and self.policy is None)
        if self.policy is not None and self.answerer.reader is not None:
            answer = decide(answer, self.verifier, self.policy)
        return answer

    def _finished(self, items: Iterator[Event]) -> Iterator[Event]:
        for item in items:
            yield self.finish(item) if isinstance(item, Answer) else item


def decide(answer: Answer, verifier: Verifier | None, policy: Policy) -> Answer:
    """The answer-or-abstain decision (see the module docstring) over a checked draft."""
    if answer.abstain_reason in (NO_PASSAGES, READER_NO_ANSWER):
        return answer
    best = answer.evidence[0] if answer.evidence else None
    margin = best.margin if best else float("-inf")
    if margin < policy.keep_margin:  # as the pre-generation gate decides (AnswerConfig.min_margin)
        return abstain(answer, READER_NO_ANSWER)
    strong = best if best is not None and margin >= policy.span_margin else None
    supported = answer.answered_by == GENERATOR and all(s.supported is not False for s in answer.sentences)
    if supported and not (policy.agree and strong is not None and not _contains(answer.answer, strong.text)):
        return answer
    if strong is not None:
        support = _support(answer, strong, verifier)
        if support is None or verifier is None or support >= verifier.threshold:
            return span_answer(answer, strong, support)
        return answer if supported else abstain(answer, UNSUPPORTED_ANSWER)
    if answer.answered_by == READER:
        return abstain(answer, READER_NO_ANSWER)
    return abstain(answer, MODEL_ABSTAINED if answer.abstain_reason == MODEL_ABSTAINED else UNSUPPORTED_ANSWER)


def _contains(text: str, span: str) -> bool:
    """Whether `span` occurs in `text`, ignoring case and spacing."""
    return " ".join(span.casefold().split()) in " ".join(text.casefold().split())


def _support(answer: Answer, best: Evidence, verifier: Verifier | None) -> float | None:
    """The verifier's P(supported) of the span as the answer, by its passage as shown."""
    if verifier is None:
        return None
    passage = answer.retrieved[best.marker - 1].text
    return verifier.scores([(passage, claim(answer.question, best.text))])[0]


def span_answer(answer: Answer, best: Evidence, support: float | None) -> Answer:
    """`answer` replaced by the reader's span, cited to its passage (the quote is the span)."""
    sentence = cites.Sentence(best.text, [best.marker])  # unchecked without a verifier
    if support is not None:
        score = round(support, 4)
        sentence = replace(sentence, support=score, citation_support=[score], supported=True, verdict="supported",
                           best_marker=best.marker)
    draft = answer.answer if answer.answered_by == GENERATOR or answer.abstain_reason == MODEL_ABSTAINED else None
    return replace(answer, answer=f"{best.text} [{best.marker}].", abstained=False, abstain_reason=None,
                   sentences=[sentence], citations=cites.cite([sentence], answer.retrieved),
                   faithfulness=None if support is None else 1.0, answered_by=READER, draft=draft)


def abstain(answer: Answer, reason: str) -> Answer:
    """`answer` turned into an abstention for `reason`; the passages and evidence stay, so the
    user can still read what was found."""
    draft = None if answer.abstained else answer.answer
    return replace(answer, answer=ABSTAIN, abstained=True, abstain_reason=reason, sentences=[], citations=[],
                   faithfulness=None, answered_by=None, draft=draft)
