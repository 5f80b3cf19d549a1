"""The answer pipeline with a scripted generator: citations, abstention paths, streaming, dropping."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Index
from rag.answer import Answer, AnswerConfig, Answerer, Delta, Drafting
from rag.decision import ABSTAIN_BELOW, MODEL_ABSTAINED, NO_PASSAGES, Gate
from rag.generate.backends import Sampling
from rag.generate.prompt import ABSTAIN
from rag.pipeline import Pipeline
from rag.retrieve import Hit
from tests.conftest import FakeEmbedder, Scripted


@pytest.fixture
def index(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> Index:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    return index


def test_answer_cites_passages_with_quotes(index: Index) -> None:
    generator = Scripted("The keeper lit the lamp at Skerry Point [1]. Bogus claim [9].")
    answer = Answerer(index, generator, AnswerConfig(k=3)).ask("Who kept the Skerry Point lighthouse?")
    assert not answer.abstained and answer.abstain_reason is None
    assert [s.citations for s in answer.sentences] == [[1], []] and answer.invalid_markers == 1
    citation = answer.citations[0]
    assert citation.chunk_id == answer.retrieved[0].chunk_id
    text = index.snapshot().document_text(citation.source)
    assert text[citation.start:citation.end] == citation.quote and citation.quote
    assert set(answer.timings) == {"retrieve_s", "first_token_s", "total_s"}
    assert "[1] (from " in generator.prompts[0][1]["content"]


def test_stream_yields_pieces_then_the_answer(index: Index) -> None:
    items = list(Answerer(index, Scripted("Lighthouses guide ships [1].")).stream("lighthouse"))
    assert isinstance(items[0], Drafting) and items[0].passages  # what the draft is written from, first
    items = items[1:]
    assert all(isinstance(i, Delta) for i in items[:-1]) and isinstance(items[-1], Answer)
    assert "".join(i.text for i in items[:-1] if isinstance(i, Delta)).strip() == items[-1].answer


def test_model_abstention_is_recognised(index: Index) -> None:
    refusing = Answerer(index, Scripted(ABSTAIN.upper() + " [1]"), gate=Gate())
    answer = refusing.ask("What is the boiling point of tungsten?")
    assert answer.abstained and answer.abstain_reason == MODEL_ABSTAINED and answer.citations == []


def test_irrelevant_retrieval_abstains_without_generating(index: Index) -> None:
    generator = Scripted("never used")
    answer = Answerer(index, generator, gate=Gate(min_dense_score=0.99)).ask("lighthouse keeper")
    assert answer.abstained and answer.abstain_reason == NO_PASSAGES and generator.prompts == []
    assert answer.answer == ABSTAIN


def test_passages_that_do_not_fit_are_dropped_and_reported(index: Index) -> None:
    full = Scripted("x [1].")
    Answerer(index, full, AnswerConfig(k=4)).ask("lighthouse")
    size = full.count_tokens(full.prompts[0])
    small = Scripted("x [1].", context_tokens=size - 1 + Sampling().max_new_tokens)
    answer = Answerer(index, small, AnswerConfig(k=4)).ask("lighthouse")
    assert len(answer.retrieved) == 3 and len(answer.dropped) == 1


def test_empty_question(index: Index) -> None:
    with pytest.raises(ValueError, match="empty"):
        Answerer(index, Scripted("x")).ask("   ")


def test_calibrated_threshold_applies_to_the_embedder_it_was_calibrated_for(tmp_path: Path, corpus: Path,
                                                                            tokenizer: object) -> None:
    index = Index(tmp_path / "idx", embedder=FakeEmbedder(tokenizer, name="all-MiniLM-L6-v2"))
    index.ingest([corpus], progress=False)
    answerer = Pipeline.build(index, Scripted("Lighthouses guide ships [1].")).answerer
    assert answerer.gate == Gate(ABSTAIN_BELOW["all-MiniLM-L6-v2"])  # no reader: no margin gate
    assert answerer.ask("xylophone quartz zeppelin").abstain_reason == NO_PASSAGES  # cosine 0 with every chunk
    assert answerer.ask("Skerry Point lighthouse keeper").abstain_reason == NO_PASSAGES  # fake cosine 0.29
    passage = index.search("Skerry Point lighthouse keeper", 1, mode="dense")[0].text
    assert not answerer.ask(passage).abstained  # cosine 1 with itself


def test_passages_are_narrowed_to_the_budget_and_stay_exact_slices(index: Index) -> None:
    question = "Who kept the Skerry Point lighthouse?"
    whole = Answerer(index, Scripted("Yes [1]."), AnswerConfig(k=3, passage_chars=None)).ask(question)
    narrow = Answerer(index, Scripted("Yes [1]."), AnswerConfig(k=3, passage_chars=80)).ask(question)
    assert max(len(h.text) for h in whole.retrieved) > 80 >= max(len(h.text) for h in narrow.retrieved)
    assert narrow.prompt_tokens < whole.prompt_tokens
    for hit in narrow.retrieved:
        assert index.snapshot().document_text(hit.source)[hit.start:hit.end] == hit.text
    assert "skerry" in narrow.retrieved[0].text.lower()


def _hits(*ranks: int) -> list[Hit]:
    return [Hit(rank, rank, f"/docs/{rank}.txt", None, 0, 1, 1.0 / rank, "", f"passage {rank}") for rank in ranks]


def test_closest_are_the_shown_passages_else_the_dropped_ones() -> None:
    def answer(retrieved: list[Hit], dropped: list[Hit]) -> Answer:
        return Answer("q?", ABSTAIN, True, NO_PASSAGES, [], [], retrieved, dropped, 0, "m", 0, {})

    assert answer(_hits(1, 2, 3, 4), _hits(5)).closest() == _hits(1, 2, 3)
    assert answer(_hits(1, 2), _hits(3, 4)).closest() == _hits(1, 2)
    assert answer([], _hits(1, 2, 3, 4)).closest(2) == _hits(1, 2)
    assert answer([], []).closest() == []
