"""The answer-or-abstain decision on hand-made drafts (no index, no models): every gate, every
reason `decide` gives, strict mode, and the wording shown for each reason."""

from __future__ import annotations

from dataclasses import replace

from rag import decision, service
from rag.answer import GENERATOR, READER, Answer, Evidence
from rag.decision import (
    MODEL_ABSTAINED,
    NO_PASSAGES,
    READER_NO_ANSWER,
    REASONS,
    UNSUPPORTED_ANSWER,
    Gate,
    Policy,
    decide,
)
from rag.generate.prompt import ABSTAIN
from rag.reader import Span
from rag.verify import check
from tests.test_verify import PASSAGES, CodeVerifier, Graded, KeywordVerifier, answer, hit

POLICY = Policy(keep_margin=0.0, span_margin=2.0)


def draft(text: str, margin: float | None, span: str = "hives") -> Answer:
    """A generator's draft over PASSAGES, verified by KeywordVerifier, with the reader's best span
    `span` in passage 1 at `margin` (None: the reader found nothing)."""
    made = replace(answer(text, PASSAGES), answered_by=GENERATOR)
    if decision.refused(text):
        made = replace(made, abstained=True, abstain_reason=MODEL_ABSTAINED, sentences=[], citations=[],
                       answered_by=None)
    evidence = [] if margin is None else [Evidence(1, span, 0, len(span), margin, 0.0, margin)]
    return check(replace(made, evidence=evidence), KeywordVerifier())


def test_the_relevance_gate() -> None:
    near, far = replace(hit(1, "x"), dense_score=0.5), replace(hit(2, "y"), dense_score=0.2)
    assert Gate().relevance([]) == NO_PASSAGES  # nothing retrieved: nothing to answer from
    assert Gate().relevance([far]) is None  # no threshold: any passage will do
    assert Gate(min_dense_score=0.3).relevance([far]) == NO_PASSAGES
    assert Gate(min_dense_score=0.3).relevance([far, near]) is None  # the best passage counts


def test_the_reader_gate_before_generating() -> None:
    strong, weak = Span(0, 0, 5, "hives", 3.0, 1.0), Span(0, 0, 5, "hives", 1.0, 3.0)
    assert Gate(min_margin=0.0).reading([]) == READER_NO_ANSWER
    assert Gate(min_margin=0.0).reading([weak, strong]) == READER_NO_ANSWER  # the best (first) span decides
    assert Gate(min_margin=0.0).reading([strong]) is None
    assert Gate().reading([]) is None  # no margin: always generate


def test_the_model_refusal_is_recognised() -> None:
    assert Gate().draft(ABSTAIN.upper() + " [1]") == MODEL_ABSTAINED
    assert Gate().draft("  ") == MODEL_ABSTAINED  # nothing said is no answer
    assert Gate().draft("Bees live in hives [1].") is None


def test_a_supported_draft_is_kept() -> None:
    kept = decide(draft("Bees live in hives [1].", 5.0), KeywordVerifier(), POLICY)
    assert not kept.abstained and kept.answered_by == GENERATOR and kept.answer == "Bees live in hives [1]."


def test_the_span_replaces_a_refusal_or_an_unsupported_draft() -> None:
    for text in (ABSTAIN, "Cows fly [2]."):
        spanned = decide(draft(text, 5.0), KeywordVerifier(), POLICY)
        assert spanned.answered_by == READER and spanned.answer == "hives [1]." and spanned.draft == text
        assert spanned.faithfulness == 1.0 and spanned.citations[0].marker == 1


def test_a_how_to_draft_is_decided_by_its_first_step_giving_code() -> None:
    """"Open your terminal." tells no how and no passage says it: the step with the command decides."""
    steps = "Open your terminal [2]. Run `bees live in hives` [1]."
    how = check(replace(draft(steps, 5.0), question="How do I find bees?"), CodeVerifier())
    kept = decide(how, CodeVerifier(), POLICY)
    assert kept.answered_by == GENERATOR and kept.answer == steps
    assert [s.verdict for s in kept.sentences] == ["unsupported", "supported"]
    assert decision.answering(how.question, how.sentences) == 1
    wrong = check(replace(draft(steps.replace("bees live", "cows fly"), 5.0), question=how.question), CodeVerifier())
    assert decide(wrong, CodeVerifier(), POLICY).abstain_reason == UNSUPPORTED_ANSWER  # and no bare span
    # Any other question is answered by its first sentence: unsupported here, so the span answers.
    assert decide(check(draft(steps, 5.0), CodeVerifier()), CodeVerifier(), POLICY).answered_by == READER


def test_each_reason_decide_gives() -> None:
    verifier = KeywordVerifier()
    assert decide(draft("Bees live in hives [1].", -1.0), verifier, POLICY).abstain_reason == READER_NO_ANSWER
    assert decide(draft("Bees live in hives [1].", None), verifier, POLICY).abstain_reason == READER_NO_ANSWER
    assert decide(draft(ABSTAIN, 1.0), verifier, POLICY).abstain_reason == MODEL_ABSTAINED  # span too weak
    unsupported = decide(draft("Cows fly [2].", 1.0), verifier, POLICY)
    assert unsupported.abstain_reason == UNSUPPORTED_ANSWER and unsupported.draft == "Cows fly [2]."
    rejected = decide(draft(ABSTAIN, 5.0, span="cows"), verifier, POLICY)  # strong span, the verifier says no
    assert rejected.abstain_reason == UNSUPPORTED_ANSWER
    reader_alone = replace(draft("hives [1].", 1.0), answered_by=READER)
    assert decide(reader_alone, verifier, POLICY).abstain_reason == READER_NO_ANSWER
    gated = decision.abstain(draft("x [1].", 5.0), NO_PASSAGES)
    assert decide(gated, verifier, POLICY) is gated  # a gate's reason stands
    for reason in (READER_NO_ANSWER, MODEL_ABSTAINED, UNSUPPORTED_ANSWER):
        assert reason in REASONS


def test_compare_lets_the_better_supported_of_draft_and_span_answer() -> None:
    """Under `compare` a supported draft that lacks the strong span "hives" gives way to it only where
    the verifier supports the span more; a draft holding the span, or a weak span, changes nothing."""
    compare = replace(POLICY, compare=True)
    ants = "Ants live in nests [2]."
    doubted = check(draft(ants, 5.0), Graded("hives"))  # the draft 0.7, the span 0.95
    assert decide(doubted, Graded("hives"), POLICY).answer == ants  # without compare: kept as written
    spanned = decide(doubted, Graded("hives"), compare)
    assert spanned.answered_by == READER and spanned.answer == "hives [1]." and spanned.draft == ants
    trusted = check(draft(ants, 5.0), Graded("ants"))  # the draft 0.95, the span 0.7
    assert decide(trusted, Graded("ants"), compare).answer == ants
    weak = check(draft(ants, 1.0), Graded("hives"))
    assert decide(weak, Graded("hives"), compare).answer == ants  # a span too weak to answer competes with nothing
    holds = check(draft("Bees live in hives [1].", 5.0), Graded("bees"))
    assert decide(holds, Graded("bees"), compare).answered_by == GENERATOR  # the answer holds the span


def test_agree_keeps_only_drafts_that_hold_a_strong_span() -> None:
    agree = Policy(keep_margin=0.0, span_margin=2.0, agree=True)
    other = decide(draft("Ants live in nests [2].", 5.0), KeywordVerifier(), agree)
    assert other.answered_by == READER and other.answer == "hives [1]."
    assert decide(draft("Bees live in hives [1].", 5.0), KeywordVerifier(), agree).answered_by == GENERATOR


def test_strict_mode_keeps_supported_sentences_and_abstains_when_none_is_left() -> None:
    verifier = KeywordVerifier()
    kept = decide(check(answer("Bees live in hives [1]. Cows fly [2, 3].", PASSAGES), verifier), verifier, None,
                  strict=True)
    assert kept.answer == "Bees live in hives [1]." and [s.text for s in kept.sentences] == ["Bees live in hives."]
    assert [c.marker for c in kept.citations] == [1] and not kept.abstained
    none = decide(check(answer("Cows fly [2].", PASSAGES), verifier), verifier, None, strict=True)
    assert none.abstained and none.abstain_reason == UNSUPPORTED_ANSWER and none.answer == ABSTAIN
    assert none.sentences == [] and none.citations == [] and none.draft == "Cows fly [2]."
    lenient = decide(check(answer("Cows fly [2].", PASSAGES), verifier), verifier, None)
    assert not lenient.abstained and lenient.faithfulness == 0.0
    unchecked = answer("Cows fly [2].", PASSAGES)
    assert replace(decide(unchecked, None, None, True), short=None) == unchecked  # nothing verified, nothing dropped


def test_the_reasons_are_worded_once_for_every_client() -> None:
    assert service.REASONS is REASONS and set(REASONS) == {NO_PASSAGES, READER_NO_ANSWER, MODEL_ABSTAINED,
                                                           UNSUPPORTED_ANSWER}
