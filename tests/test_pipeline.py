"""Reader-guided drafts, citations corrected to the passage holding the answer, and every branch
of the answer-or-abstain decision, with a scripted generator, a fake reader and a keyword verifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rag import Index
from rag.answer import GENERATOR, READER, AnswerConfig, Answerer
from rag.decision import (
    ABSTAIN_BELOW,
    MODEL_ABSTAINED,
    NO_PASSAGES,
    READER_NO_ANSWER,
    UNSUPPORTED_ANSWER,
    Gate,
    Policy,
)
from rag.generate.prompt import ABSTAIN
from rag.pipeline import Pipeline
from rag.reader import Span
from rag.retrieve import Hit
from tests.conftest import FakeEmbedder, Scripted
from tests.test_verify import KeywordVerifier

QUESTION = "When was whale oil replaced by colza oil?"
POLICY = Policy(keep_margin=0.0, span_margin=2.0)


class FakeReader:
    """Finds `answer` wherever a passage holds it, with the given margin."""

    name = "fake-reader"

    def __init__(self, answer: str, margin: float) -> None:
        self.answer, self.margin = answer, margin
        self.policy: dict[str, Any] = {}

    def read_hits(self, question: str, hits: Sequence[Hit], top: int = 3) -> list[Span]:
        found = [(n, h.text.find(self.answer)) for n, h in enumerate(hits)]
        return [Span(n, at, at + len(self.answer), self.answer, self.margin, 0.0) for n, at in found if at >= 0][:top]


@pytest.fixture
def index(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> Index:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    return index


class Rejecting(KeywordVerifier):
    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [0.1] * len(pairs)


SUPPORTED = "Whale oil was replaced by colza oil in 1846 [1]."  # every word in the passage: KeywordVerifier agrees
# The reader's span "1846" written out as its passage's sentence (rag.generate.citations.stating).
STATED = "Whale oil was replaced by colza oil in 1846, and by paraffin in 1871"


def pipeline(index: Index, reply: str | None, answer: str = "1846", margin: float = 5.0,
             verifier: KeywordVerifier | None = None, policy: Policy = POLICY) -> Pipeline:
    generator = Scripted(reply) if reply is not None else None
    answerer = Answerer(index, generator, AnswerConfig(k=4), FakeReader(answer, margin), Gate())
    return Pipeline(answerer, verifier or KeywordVerifier(), policy)


def spanned(index: Index) -> str:
    """The answer the reader's span "1846" gives: its sentence, cited to the passage holding it."""
    return f"{STATED} [{holder(index)}]."


def holder(index: Index, text: str = "1846") -> int:
    """The marker of the passage holding `text` among the hits the pipeline gets."""
    hits = index.search(QUESTION, 4)
    return next(n for n, h in enumerate(hits, 1) if text in h.text)


def test_the_draft_sees_the_evidence_and_a_wrong_marker_is_corrected_to_the_passage_holding_the_answer(
        index: Index) -> None:
    right = holder(index)
    wrong = 1 if right != 1 else 2
    draft = pipeline(index, f"1846 [{wrong}].", verifier=KeywordVerifier())
    answer = draft.ask(QUESTION)
    prompt = draft.answerer.generator.prompts[0][1]["content"]  # type: ignore[union-attr]
    assert f'Evidence: passage [{right}] says "1846".' in prompt
    sentence = answer.sentences[0]
    assert sentence.citations == [right] and sentence.citation_corrected and sentence.cited_as == [wrong]
    citation = answer.citations[0]
    assert citation.quote == "1846" and citation.marker == right  # the quote is the answer string itself
    text = index.snapshot().document_text(citation.source)
    assert text[citation.start:citation.end] == "1846"
    assert answer.answered_by == GENERATOR and answer.evidence[0].marker == right and "read_s" in answer.timings


def test_a_supported_draft_is_kept(index: Index) -> None:
    answer = pipeline(index, SUPPORTED, verifier=KeywordVerifier()).ask(QUESTION)
    assert not answer.abstained and answer.answer.startswith("Whale oil was replaced") and answer.draft is None


def test_an_unsupported_draft_gives_way_to_a_strong_span(index: Index) -> None:
    answer = pipeline(index, "In 1901 [1].", verifier=KeywordVerifier()).ask(QUESTION)
    assert not answer.abstained and answer.answered_by == READER and answer.draft == "In 1901 [1]."
    assert answer.answer == spanned(index) and answer.sentences[0].supported and answer.short == "1846"
    assert answer.citations[0].quote == "1846"  # the span is the quote


def test_with_agree_a_supported_draft_without_the_strong_span_gives_way_to_it(index: Index) -> None:
    other = "Whale oil was replaced by colza oil [1]."  # supported, but without the reader's "1846"
    agree = replace(POLICY, agree=True)
    assert pipeline(index, other, policy=POLICY).ask(QUESTION).answer == other
    answer = pipeline(index, other, policy=agree).ask(QUESTION)
    assert answer.answered_by == READER and answer.answer == spanned(index) and answer.draft == other
    assert pipeline(index, SUPPORTED, policy=agree).ask(QUESTION).answered_by == GENERATOR  # it holds the span
    weak = pipeline(index, other, margin=POLICY.span_margin - 0.5, policy=agree).ask(QUESTION)
    assert weak.answer == other  # a span too weak to answer does not overrule a supported draft


def test_a_how_to_question_is_never_answered_by_a_bare_span(index: Index) -> None:
    """"venv" is no answer to "How do I activate a virtual environment?": the drafted steps or nothing."""
    how = "How do I get whale oil replaced by colza oil?"
    answer = pipeline(index, "In 1901 [1].", verifier=KeywordVerifier()).ask(how)
    assert answer.abstain_reason == UNSUPPORTED_ANSWER and answer.draft == "In 1901 [1]." and answer.evidence
    assert pipeline(index, None, verifier=KeywordVerifier()).ask(how).answer == spanned(index)  # the reader alone


def test_a_refusal_gives_way_to_a_strong_span(index: Index) -> None:
    answer = pipeline(index, ABSTAIN, verifier=KeywordVerifier()).ask(QUESTION)
    assert answer.answered_by == READER and answer.draft == ABSTAIN and answer.answer == spanned(index)


def test_each_abstain_reason_is_reachable(index: Index) -> None:
    supports = KeywordVerifier()
    refused = pipeline(index, ABSTAIN, margin=1.0, verifier=supports).ask(QUESTION)  # span not strong enough
    assert refused.abstained and refused.abstain_reason == MODEL_ABSTAINED
    unsupported = pipeline(index, "In 1901 [1].", margin=1.0, verifier=supports).ask(QUESTION)
    assert unsupported.abstain_reason == UNSUPPORTED_ANSWER and unsupported.draft == "In 1901 [1]."
    no_answer = pipeline(index, SUPPORTED, margin=-3.0, verifier=supports).ask(QUESTION)
    assert no_answer.abstain_reason == READER_NO_ANSWER  # a supported draft, but the reader says "nothing here"
    span_rejected = pipeline(index, ABSTAIN, verifier=Rejecting()).ask(QUESTION)
    assert span_rejected.abstain_reason == UNSUPPORTED_ANSWER  # strong span, but the verifier rejects it
    gate = Pipeline(Answerer(index, Scripted("never"), AnswerConfig(), FakeReader("1846", 9.0),
                             Gate(min_dense_score=0.99)),
                    KeywordVerifier(), POLICY).ask(QUESTION)
    assert gate.abstain_reason == NO_PASSAGES
    for abstention in (refused, unsupported, no_answer, span_rejected):
        assert abstention.answer == ABSTAIN and abstention.retrieved and not abstention.citations


def test_the_reader_alone_answers_with_its_span_or_abstains(index: Index) -> None:
    strong = pipeline(index, None).ask(QUESTION)
    assert strong.answered_by == READER and strong.answer == spanned(index)
    weak = pipeline(index, None, margin=1.0).ask(QUESTION)
    assert weak.abstain_reason == READER_NO_ANSWER
    nothing = pipeline(index, None, answer="not in any passage").ask(QUESTION)
    assert nothing.abstained and nothing.evidence == []


def test_an_answerer_needs_a_generator_or_a_reader(index: Index) -> None:
    with pytest.raises(ValueError, match="a generator, a reader, or both"):
        Answerer(index, None)


def test_made_pipelines_skip_generation_when_the_reader_finds_nothing(index: Index) -> None:
    generator = Scripted("never used")
    weak = Pipeline.build(index, generator, AnswerConfig(k=4), FakeReader("1846", -3.0), KeywordVerifier())
    answer = weak.ask(QUESTION)
    assert answer.abstain_reason == READER_NO_ANSWER and generator.prompts == []
    assert answer.evidence and answer.retrieved  # what was found is still there to show
    strong = Pipeline.build(index, generator, AnswerConfig(k=4), FakeReader("1846", 5.0), KeywordVerifier())
    assert strong.answerer.gate == Gate(None, strong.policy.keep_margin)  # type: ignore[union-attr]
    strict = FakeReader("1846", 5.0)
    strict.policy = {"keep_margin": 6.0, "span_margin": 6.0}  # the reader's own calibration rules
    assert Pipeline.build(index, generator, AnswerConfig(k=4), strict).ask(QUESTION).abstain_reason == READER_NO_ANSWER
    assert generator.prompts == []


def test_the_evidence_line_can_be_left_out(index: Index) -> None:
    generator = Scripted("1846 [1].")
    Answerer(index, generator, AnswerConfig(k=4, evidence_hint=False), FakeReader("1846", 5.0)).ask(QUESTION)
    assert "Evidence:" not in generator.prompts[0][1]["content"]


def test_the_evidence_line_goes_by_default_only_to_a_model_that_cites_with_markers(index: Index) -> None:
    """The SmolLM2 adapter learnt its prompt with the reader's span in it; a plain-sentence model
    took the hinted span over the right one, so it is not shown one unless asked."""
    cites, plain = Scripted("1846 [1]."), Scripted("It was 1846.")
    plain.markers = False
    for generator in (cites, plain):
        Answerer(index, generator, AnswerConfig(k=4), FakeReader("1846", 5.0)).ask(QUESTION)
    assert 'Evidence: passage [1] says "1846".' in cites.prompts[0][1]["content"]
    assert "Evidence:" not in plain.prompts[0][1]["content"]
    Answerer(index, plain, AnswerConfig(k=4, evidence_hint=True), FakeReader("1846", 5.0)).ask(QUESTION)
    assert "Evidence:" in plain.prompts[1][1]["content"]


def test_a_pipeline_built_once_answers_from_what_is_ingested_later(index: Index, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ABSTAIN_BELOW, "fake-hash", 0.05)  # the gate, as calibrated for the index's embedder
    answers = Pipeline.build(index, None, AnswerConfig(k=4), FakeReader("Zanzibar", 5.0))
    assert answers.answerer.gate == Gate(0.05, Policy().keep_margin)
    assert answers.ask("Which island exported cloves?").abstained
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "cloves.txt").write_text("Cloves were exported from Zanzibar for centuries.")
    index.ingest([tmp_path / "new"], progress=False)
    answer = answers.ask("Which island exported cloves?")
    assert answer.answered_by == READER and answer.answer.startswith("Cloves were exported from Zanzibar")


def test_the_public_api_is_one_import() -> None:
    import rag

    for name in rag.__all__:
        assert getattr(rag, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        rag.Nothing  # noqa: B018
    from rag import Delta, Pipeline  # noqa: F401  # what the README's ten lines use
    assert callable(Pipeline.default)
