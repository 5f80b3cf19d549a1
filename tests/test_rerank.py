"""Reranking: ordering and provenance with a fake reranker; the weights format with a real tiny training run."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from rag import Index
from rag.crossencoder import WEIGHTS
from rag.evaluation import retrieval as ev
from rag.models import ModelNotFoundError
from rag.rerank import SPEC, CrossEncoderReranker, RerankingRetriever
from rag.retrieve import Hit
from rag.training import reranker as training
from tests.conftest import FakeEmbedder, write_halueval


class WordOverlap:
    """Scores a text by how many of the query's words it contains."""

    name = "word-overlap"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        self.seen.extend(texts)
        words = set(re.findall(r"\w+", query.lower()))
        return [float(len(words & set(re.findall(r"\w+", t.lower())))) for t in texts]


class Fixed:
    """A first stage that returns its hits as given."""

    def __init__(self, texts: list[str]) -> None:
        self.hits = [Hit(i, i, f"/doc{i}", None, 0, len(t), 1.0 / i, "", t, dense_rank=i) for i, t in
                     enumerate(texts, 1)]

    def search(self, query: str, k: int = 5) -> list[Hit]:
        return self.hits[:k]


def test_reranks_the_top_n_and_keeps_the_rest_in_first_stage_order() -> None:
    first = Fixed(["red", "red green", "red green blue", "blue", "green"])
    scorer = WordOverlap()
    hits = RerankingRetriever(first, scorer, top_n=3).search("red green blue", k=5)
    assert [h.text for h in hits] == ["red green blue", "red green", "red", "blue", "green"]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.first_rank for h in hits] == [3, 2, 1, 4, 5]
    assert [h.rerank_score for h in hits] == [3.0, 2.0, 1.0, None, None]
    assert hits[0].score == 3.0 and hits[3].score == pytest.approx(1 / 4)  # the tail keeps first-stage scores
    assert hits[0].dense_rank == 3  # method ranks survive reranking
    assert scorer.seen == ["red", "red green", "red green blue"]  # only the top_n were scored


def test_asks_the_first_stage_for_top_n_even_when_k_is_smaller() -> None:
    hits = RerankingRetriever(Fixed(["a", "b", "c", "a b c d"]), WordOverlap(), top_n=4).search("a b c d", k=1)
    assert [h.text for h in hits] == ["a b c d"] and hits[0].first_rank == 4


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="top_n"):
        RerankingRetriever(Fixed(["a"]), WordOverlap(), top_n=0)
    retriever = RerankingRetriever(Fixed(["a"]), WordOverlap())
    with pytest.raises(ValueError, match="empty"):
        retriever.search("  ")
    with pytest.raises(ValueError, match="k must be"):
        retriever.search("a", k=0)


def test_index_reranks_on_request(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    scorer = WordOverlap()
    index = Index(tmp_path / "idx", embedder=fake, reranker=scorer, rerank_top_n=10)
    index.ingest([corpus], progress=False)
    plain = index.search("lighthouse keeper", k=3)
    assert all(h.rerank_score is None for h in plain) and not scorer.seen
    reranked = index.search("lighthouse keeper", k=3, rerank=True)
    assert all(h.rerank_score is not None for h in reranked)
    scores = [h.rerank_score or 0.0 for h in reranked]
    assert scores == sorted(scores, reverse=True)


def test_evaluation_reports_rerank_modes(tmp_path: Path, fake: FakeEmbedder) -> None:
    data = ev.Dataset("tiny", {"d1": "the cat sat on the mat", "d2": "dogs chase cats in the park"},
                      {"q1": "where did the cat sit", "q2": "what do dogs chase"}, {"q1": {"d1": 1}, "q2": {"d2": 1}})
    index, by_path = ev.build_index(data, tmp_path, fake, progress=False, reranker=WordOverlap())
    results = ev.evaluate(index, by_path, data, ["hybrid", "hybrid+rerank"], progress=False)
    assert set(results) == {"hybrid", "hybrid+rerank"} and results["hybrid+rerank"]["recall@20"] == 1.0
    with pytest.raises(ValueError, match="MODE\\+rerank"):
        ev.evaluate(index, by_path, data, ["hybrid+magic"], progress=False)


def test_training_groups_use_bm25_hard_negatives_and_hold_out_dev(tmp_path: Path) -> None:
    data = write_halueval(tmp_path / "qa.jsonl", 40)
    groups = training.training_groups(data, training.TrainConfig(dev_rows=10, negatives=2))
    assert len(groups) == 30  # the last 10 rows are never trained on
    first = groups[0]
    assert first.passages[0].startswith("The volcano number 0 ") and len(first.passages) == 3
    assert all("volcano" in p for p in first.passages[1:])  # BM25's best wrong answers share the topic
    with pytest.raises(ValueError, match="need more than"):
        training.training_groups(data, training.TrainConfig(dev_rows=40))


@pytest.mark.slow
def test_trained_weights_load_over_the_base_model(tiny_reranker: Path, tmp_path: Path) -> None:
    record = json.loads((tiny_reranker / SPEC).read_text())
    assert record["groups"] == 8 and record["steps"] == 2 and record["base"] == "all-MiniLM-L6-v2"
    assert record["max_length"] == 256 and (tiny_reranker / WEIGHTS).stat().st_size < 25 * 2**20
    from safetensors.torch import load_file, save_file

    reranker = CrossEncoderReranker(str(tiny_reranker))
    saved = load_file(str(tiny_reranker / WEIGHTS))["classifier.weight"].float()
    assert bool((reranker.model.model.classifier.weight.detach() == saved).all())
    scores = reranker.scores("In which year was comet 3 recorded?", ["The comet number 3 was recorded.", "x"])
    assert len(scores) == 2 and reranker.scores("q", []) == []

    broken = shutil.copytree(tiny_reranker, tmp_path / "broken")
    save_file({"classifier.weight": saved, "not.a.layer": saved.clone()}, str(broken / WEIGHTS))
    with pytest.raises(ValueError, match="do not fit base model"):
        _ = CrossEncoderReranker(str(broken)).model
    (broken / SPEC).write_text(json.dumps({**record, "base": str(tmp_path / "nowhere")}))
    with pytest.raises(ModelNotFoundError):
        _ = CrossEncoderReranker(str(broken)).model
