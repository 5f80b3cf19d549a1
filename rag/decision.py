"""The answer-or-abstain decision, in one place: every reason an answer abstains, its wording,
the gates that stop a draft and the policy that decides over a checked one.

A 135M generator is poor at three jobs: finding the answer's span, choosing the citation and
deciding whether to refuse. The reader finds the span, the citation is corrected to the
passage holding the answer (rag.generate.citations, rag.verify), and the decision is made
here from signals that can be calibrated, not left to the model:

1. `Gate`, which `rag.answer.Answerer` is given and calls while drafting: no passage relevant
   enough -> abstain before generating (`no_relevant_passages`); the reader's best margin below
   `keep_margin` -> abstain before generating too (no draft could be kept), with
   `reader_found_no_answer`; the model's fixed refusal sentence -> `model_abstained`;
2. `decide`, over the draft once verified: the draft is kept when the verifier supports the
   sentence that answers (`answering`: its first, or under a how-to question its first step giving
   code), the reader's best span having beaten its passage's "no answer" score by at least
   `keep_margin` (step 1 made sure); later sentences the verifier
   does not support stay, marked "unsupported" (strict mode drops them). With `agree`, the draft
   must also contain the reader's span when that span is strong enough to answer (a supported
   draft naming another value than the span is usually the wrong cell); with `compare`, its
   answering sentence must hold that span or be supported at least as well as it (`outranked`);
3. else the reader's span is the answer when its margin is at least `span_margin` and the
   verifier supports it (a refusal or an unsupported draft replaced), written out as its passage's
   sentence or as a table cell with its row and column (`rag.generate.citations.stating`) and
   cited to the span itself, except for a question asking how to do something, which a span does
   not answer;
4. else abstain, naming the signal that decided: `model_abstained` (the model refused and the
   span was too weak), `unsupported_answer` (the verifier rejected the draft, and the span was
   too weak or rejected too); the reader alone (no generator) says `reader_found_no_answer`.
   Strict mode then keeps only the sentences the verifier supports, and abstains with
   `unsupported_answer` when none is left (with or without a policy).
5. every decided answer carries its short answer (`Answer.short`, `short_answer`): the reader's
   span where the answer holds it, else what the answering sentence adds to the question, for
   SQuAD-style scoring and for the UI to bold.

`replaceable` says whether the decision can give another text than the draft as written: where it
cannot, the draft is shown as it is generated; where it can, nothing is shown before it is made
(rag.pipeline), so no text shown is ever taken back.

The thresholds are chosen on HaluEval dev rows by `benchmarks/decision.py` and written into
the reader's own `reader.json` ("policy") and model card, so a retrained reader brings its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag import entities
from rag.answer import GENERATOR, READER, Answer, Evidence
from rag.generate import citations as cites
from rag.generate.prompt import ABSTAIN, HOW_TO_QUESTION
from rag.reader import Span
from rag.retrieve import Hit
from rag.verify import Verifier, answer_part, claim, premise, support

NO_PASSAGES = "no_relevant_passages"  # retrieval found nothing above the relevance threshold
READER_NO_ANSWER = "reader_found_no_answer"  # the reader found no span beating "no answer here"
MODEL_ABSTAINED = "model_abstained"  # the model said the passages do not answer the question
UNSUPPORTED_ANSWER = "unsupported_answer"  # the verifier supports neither the draft nor the span

# What each abstain_reason means, in words the CLI and the web UI show.
REASONS = {NO_PASSAGES: "no passage is close enough to the question",
           READER_NO_ANSWER: "the reader found no answer in the passages",
           MODEL_ABSTAINED: "the generator said the passages do not answer it",
           UNSUPPORTED_ANSWER: "the verifier found no answer the passages support"}

# Best-passage cosine below which no passage is taken to be relevant, per embedder, calibrated by
# benchmarks/abstention.py on HaluEval dev rows: keeps 97% of answerable questions, stops 48% of others.
ABSTAIN_BELOW = {"all-MiniLM-L6-v2": 0.377}


@dataclass(frozen=True)
class Policy:
    keep_margin: float = 0.0  # a supported draft is kept from this reader margin up
    span_margin: float = 2.0  # the reader's span answers from this margin up (if the verifier supports it)
    agree: bool = False  # keep a supported draft only if it contains a span strong enough to answer
    # A supported draft whose answering sentence does not hold a span strong enough to answer is kept
    # only if the verifier supports that sentence at least as well as the span (`outranked`).
    compare: bool = False


@dataclass(frozen=True)
class Gate:
    """The stops while drafting (rag.answer.DraftGate): each check returns the reason to abstain,
    or None to go on. `rag.pipeline.Pipeline.build` calibrates both thresholds."""

    min_dense_score: float | None = None  # best-passage cosine needed to generate (None: any passage will do)
    min_margin: float | None = None  # the reader's best margin needed to generate (None: always generate)

    def relevance(self, hits: list[Hit]) -> str | None:
        """Before reading: is any passage relevant enough to answer from?"""
        if not hits:
            return NO_PASSAGES
        if self.min_dense_score is None:
            return None
        best = max((h.dense_score for h in hits if h.dense_score is not None), default=-1.0)
        return None if best >= self.min_dense_score else NO_PASSAGES

    def reading(self, spans: list[Span]) -> str | None:
        """After the reader, before generating: could a draft be kept at all (Policy.keep_margin)?"""
        if self.min_margin is None or (spans and spans[0].margin >= self.min_margin):
            return None
        return READER_NO_ANSWER

    def draft(self, text: str) -> str | None:
        """After generating: did the model refuse (the fixed abstention sentence, or nothing)?"""
        return MODEL_ABSTAINED if refused(text) else None


def refused(text: str) -> bool:
    """`text` is the abstention sentence (markers, case and punctuation aside), or empty."""
    def norm(s: str) -> str:
        return " ".join(cites.MARKER.sub(" ", s).lower().replace(".", " ").split())

    return norm(text).startswith(norm(ABSTAIN)) or not norm(text)


def replaceable(policy: Policy | None, strict: bool, verifier: Verifier | None) -> bool:
    """Whether `decide` can answer with another text than the draft's: with a policy (the reader's
    span or an abstention in its place), or strict with a verifier (sentences dropped). Otherwise the
    draft, refusal included, is the answer word for word."""
    return policy is not None or (strict and verifier is not None)


def by_lead(policy: Policy | None, strict: bool) -> bool:
    """Whether a draft's answering sentence (`answering`), once checked, decides whether it is kept
    (see `_decide`), so its sentences can be shown as they come (rag.pipeline.Lead): under a policy that is not
    `agree` (which needs the whole draft), and not strict (which rewrites the kept text)."""
    return policy is not None and not policy.agree and not strict


def decide(answer: Answer, verifier: Verifier | None, policy: Policy | None, strict: bool = False) -> Answer:
    """The answer-or-abstain decision (see the module docstring) over a checked draft, with its short
    answer; without a policy the draft stands. Either way a generator's answer is cut to its supported
    sentences if `strict` (and it was verified)."""
    decided = _decide(answer, verifier, policy)
    if strict and verifier is not None and decided.answered_by != READER:
        decided = only_supported(decided)
    short = short_answer(decided)
    return decided if short == decided.short else replace(decided, short=short)


def short_answer(answer: Answer) -> str | None:
    """The shortest span that answers, as the answer writes it: the reader's best span the answer
    holds (the span itself when the reader answered); else what the answering sentence says beyond
    restating the question (`verify.answer_part`: "Broncos" in "The Broncos won Super Bowl 50.");
    else the answer's sentences without their markers. None for an abstention."""
    if answer.abstained:
        return None
    for evidence in answer.evidence:  # best first
        if found := _written(evidence.text, answer.answer):
            return found
    if (lead := answering(answer.question, answer.sentences)) is not None:
        part = answer_part(answer.question, answer.sentences[lead].text).rstrip(".!?;: ")
        if found := _written(part, answer.answer):
            return found
    return " ".join(s.text for s in answer.sentences) or " ".join(cites.MARKER.sub(" ", answer.answer).split()) or None


def _written(text: str, answer: str) -> str | None:
    """`text` as `answer` writes it (whitespace and case aside), or None where it does not."""
    found = re.search(r"\s+".join(map(re.escape, text.split())), answer, re.IGNORECASE) if text.strip() else None
    return found.group() if found else None


def _decide(answer: Answer, verifier: Verifier | None, policy: Policy | None) -> Answer:
    if policy is None:
        return answer
    if answer.abstain_reason in (NO_PASSAGES, READER_NO_ANSWER):
        return answer
    best = answer.evidence[0] if answer.evidence else None
    margin = best.margin if best else float("-inf")
    if margin < policy.keep_margin:  # as the pre-generation gate decides (Gate.reading)
        return abstain(answer, READER_NO_ANSWER)
    # A bare span is no answer to "How do I ...?" ("venv" for how to activate an environment): there the
    # drafted steps are kept or nothing is (docs/models.md, 2026-12-05).
    how = answer.answered_by != READER and HOW_TO_QUESTION.match(answer.question)
    strong = best if best is not None and margin >= policy.span_margin and not how else None
    lead = answer.sentences[answering(answer.question, answer.sentences) or 0] if answer.sentences else None
    supported = answer.answered_by == GENERATOR and lead is not None and lead.supported is not False
    disagrees = policy.agree and strong is not None and _written(strong.text, answer.answer) is None
    if supported and lead is not None and not disagrees and not outranked(
            policy, verifier, answer.question, lead.text, answer.retrieved, answer.evidence):
        return answer
    if strong is not None:
        if verifier is None:
            return span_answer(answer, strong, None)
        spans = span_support(verifier, answer.question, strong, answer.retrieved)
        if spans >= verifier.threshold:
            return span_answer(answer, strong, spans)
        return answer if supported else abstain(answer, UNSUPPORTED_ANSWER)
    if answer.answered_by == READER:
        return abstain(answer, READER_NO_ANSWER)
    return abstain(answer, MODEL_ABSTAINED if answer.abstain_reason == MODEL_ABSTAINED else UNSUPPORTED_ANSWER)


def outranked(policy: Policy, verifier: Verifier | None, question: str, lead: str, passages: list[Hit],
              evidence: Sequence[Evidence]) -> bool:
    """Under `Policy.compare`: whether the reader's best span, strong enough to answer, is missing from
    the draft's answering sentence `lead` and better supported than it (each by its best passage), so
    that the span answers in the draft's place: of two readings of the passages, the better checked
    wins. Decided from the answering sentence alone, so a stream can decide it too (rag.pipeline.Lead)."""
    best = evidence[0] if evidence else None
    if (not policy.compare or verifier is None or best is None or best.margin < policy.span_margin
            or HOW_TO_QUESTION.match(question) or _written(best.text, lead) is not None):
        return False
    return span_support(verifier, question, best, passages) > support(verifier, question, lead, passages)


def answering(question: str, sentences: Sequence[cites.Sentence]) -> int | None:
    """Which sentence answers, and so decides whether a draft is kept: the first, except under a
    question asking how to do something, where it is the first that gives code (a step such as "Open
    your terminal." tells no how, and no passage need say it); None while a how-to draft has given
    none (the first then decides, once the draft is whole)."""
    if not HOW_TO_QUESTION.match(question):
        return 0 if sentences else None
    return next((i for i, s in enumerate(sentences) if entities.CODE.search(s.text)), None)


def only_supported(answer: Answer) -> Answer:
    """Strict mode: keep the sentences the verifier supports (and their citations); abstain when
    none is left."""
    kept, citations, position = [], [], 0
    for sentence in answer.sentences:
        mine = answer.citations[position: position + len(sentence.citations)]
        position += len(sentence.citations)
        if sentence.supported:
            kept.append(sentence)
            citations += mine
    if len(kept) == len(answer.sentences):
        return answer
    if not kept:
        return abstain(answer, UNSUPPORTED_ANSWER)
    return replace(answer, answer=" ".join(_with_markers(s) for s in kept), sentences=kept, citations=citations)


def _with_markers(sentence: cites.Sentence) -> str:
    """The sentence written back as the model writes it: "It rains [1]." """
    markers = "".join(f"[{n}]" for n in sentence.citations)
    body, end = (sentence.text[:-1], sentence.text[-1]) if sentence.text[-1:] in ".!?" else (sentence.text, "")
    return f"{body} {markers}{end}" if markers else sentence.text


def span_support(verifier: Verifier, question: str, span: Evidence, passages: Sequence[Hit]) -> float:
    """The verifier's P(supported) of the span as the answer, by its passage as shown."""
    return verifier.scores([(premise(passages[span.marker - 1]), claim(question, span.text))])[0]


def span_answer(answer: Answer, best: Evidence, support: float | None) -> Answer:
    """`answer` replaced by the reader's span written out (`cites.stating`: the passage's sentence
    holding it, or a table cell with its row and column; the span alone where neither can be),
    cited to its passage with the span as its quote; the span is the short answer. The verifier's
    support is the span's (`span_support`): the sentence around it is the passage's own words."""
    hit = answer.retrieved[best.marker - 1]
    stated = cites.stating(hit, best.text, best.start, best.end)
    sentence = cites.Sentence(stated or best.text, [best.marker])  # unchecked without a verifier
    if support is not None:
        score = round(support, 4)
        sentence = replace(sentence, support=score, citation_support=[score], supported=True, verdict="supported",
                           best_marker=best.marker)
    draft = answer.answer if answer.answered_by == GENERATOR or answer.abstain_reason == MODEL_ABSTAINED else None
    quoted = cites.Citation(best.marker, hit.chunk_id, hit.source, hit.page, best.start, best.end, best.text)
    return replace(answer, answer=_with_markers(sentence) if stated else f"{best.text} [{best.marker}].",
                   abstained=False, abstain_reason=None, sentences=[sentence],
                   citations=[quoted] if stated else cites.cite([sentence], answer.retrieved),
                   faithfulness=None if support is None else 1.0, answered_by=READER, draft=draft)


def abstain(answer: Answer, reason: str) -> Answer:
    """`answer` turned into an abstention for `reason`; the passages and evidence stay, so the
    user can still read what was found."""
    draft = None if answer.abstained else answer.answer
    return replace(answer, answer=ABSTAIN, abstained=True, abstain_reason=reason, sentences=[], citations=[],
                   faithfulness=None, answered_by=None, draft=draft)
