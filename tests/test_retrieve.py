"""Retrieval modes: RRF arithmetic, BM25 kept in step with the index, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag import Index, IndexCorrupt
from rag.lexical import FOLDER, IDS
from rag.retrieve import FusionConfig, rrf
from rag.store import Snapshot
from tests.conftest import FIXTURES, FakeEmbedder


def test_rrf_matches_hand_computed_scores() -> None:
    fused = rrf({"dense": [1, 2, 3], "bm25": [3, 1, 4]}, {"dense": 1.0, "bm25": 1.0}, k=60)
    expected = {1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61, 4: 1 / 63}
    assert [cid for cid, _ in fused] == [1, 3, 2, 4]
    assert all(score == pytest.approx(expected[cid]) for cid, score in fused)


def test_rrf_weights_and_constant() -> None:
    only_bm25 = rrf({"dense": [1, 2], "bm25": [2, 1]}, {"dense": 0.0, "bm25": 1.0}, k=60)
    assert [cid for cid, _ in only_bm25] == [2, 1]
    weighted = rrf({"dense": [1, 2], "bm25": [2, 1]}, {"dense": 2.0, "bm25": 1.0}, k=1)
    assert weighted == [(1, pytest.approx(2 / 2 + 1 / 3)), (2, pytest.approx(2 / 3 + 1 / 2))]


def _bm25_ids(index_dir: Path) -> set[int]:
    snap = Snapshot.open(index_dir)
    sql_ids = {r[0] for r in snap.db.execute("SELECT id FROM chunks")}
    assert set(snap.lexical.chunk_ids.tolist()) == sql_ids, "BM25 and SQLite disagree"
    return sql_ids


def test_bm25_follows_updates_and_deletions(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    hits = index.search("vulcanising solution", k=3, mode="bm25")
    assert Path(hits[0].source).name == "sample.rst" and hits[0].bm25_rank == 1 and hits[0].dense_rank is None
    (corpus / "sample.rst").write_text("Airships\n========\n\nA zeppelin floats on hydrogen or helium.\n")
    index.ingest([corpus], progress=False)
    _bm25_ids(tmp_path / "idx")
    assert index.search("vulcanising", k=3, mode="bm25") == []
    assert Path(index.search("zeppelins", k=1, mode="bm25")[0].source).name == "sample.rst"  # stemmed
    (corpus / "sample.rst").unlink()
    index.ingest([corpus], progress=False)
    _bm25_ids(tmp_path / "idx")
    assert index.search("zeppelin", k=3, mode="bm25") == []


def test_hybrid_hits_carry_both_methods_ranks(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    hits = index.search("Skerry Point lighthouse keeper", k=3, mode="hybrid")
    top = hits[0]
    assert Path(top.source).name == "sample.txt" and top.dense_rank == 1 and top.bm25_rank == 1
    fusion = FusionConfig()
    assert top.score == pytest.approx((fusion.dense_weight + fusion.bm25_weight) / (fusion.rrf_k + 1))
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score
    dense = index.search("Skerry Point lighthouse keeper", k=3, mode="dense")
    assert dense[0].bm25_rank is None and dense[0].score == dense[0].dense_score
    only_dense = Index(tmp_path / "idx", embedder=fake, fusion=FusionConfig(bm25_weight=0.0))
    assert [h.chunk_id for h in only_dense.search("keeper wicks", k=3)] == [
        h.chunk_id for h in index.search("keeper wicks", k=3, mode="dense")]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_bad_queries_are_clear_errors(tmp_path: Path, corpus: Path, fake: FakeEmbedder, mode: str) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    with pytest.raises(ValueError, match="query is empty"):
        index.search("   ", mode=mode)
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search("bees", k=0, mode=mode)
    with pytest.raises(ValueError, match="unknown search mode 'fuzzy'.*dense, bm25, hybrid"):
        index.search("bees", mode="fuzzy")


def test_tampered_bm25_file_is_detected(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False)
    ids_file = Snapshot.open(tmp_path / "idx").path / FOLDER / IDS
    np.save(ids_file, np.array([1, 2, 3], dtype=np.int64))
    with pytest.raises(IndexCorrupt, match=rf"{IDS}.*checksum"):
        Snapshot.open(tmp_path / "idx")


def test_an_index_with_no_chunks_returns_no_hits(tmp_path: Path, fake: FakeEmbedder) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(FIXTURES / "empty.txt", broken / "empty.txt")
    index = Index(tmp_path / "idx", embedder=fake)
    assert index.ingest([broken], progress=False).chunks_total == 0
    for mode in ("dense", "bm25", "hybrid"):
        assert index.search("anything at all", k=3, mode=mode) == []
