"""Vector index kinds: exact flat, IVF and IVF-PQ, their conversions, and deletions in them."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag import Index, catalog, store, vectors
from rag.store import IndexMeta, Snapshot
from tests.conftest import FIXTURES, FakeEmbedder, chunk_set


def _grow(corpus: Path, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        (corpus / f"note{i}.txt").write_text(f"Note {i} concerns topic {i % 7}: " + f"word{i} " * 40)


def _meta(index_dir: Path) -> IndexMeta:
    return Snapshot.open(index_dir).meta


def _unit(n: int, dim: int = 32, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", [vectors.FLAT, vectors.IVF])
def test_contents_round_trip(kind: str) -> None:
    x, ids = _unit(500), np.arange(1000, 1500, dtype=np.int64)
    index = vectors.build(kind, 32, ids, x)
    index.remove_ids(np.array([1001, 1002], dtype=np.int64))  # type: ignore[arg-type]  # faiss wraps arrays
    got_ids, got = vectors.contents(index)
    order = np.argsort(got_ids)
    keep = np.isin(ids, [1001, 1002], invert=True)
    assert np.array_equal(got_ids[order], ids[keep]) and np.allclose(got[order], x[keep])


def test_ivf_visiting_every_list_equals_exact_search() -> None:
    x, ids = _unit(2000), np.arange(2000, dtype=np.int64)
    exact, ivf = vectors.build(vectors.FLAT, 32, ids, x), vectors.build(vectors.IVF, 32, ids, x)
    vectors.set_nprobe(ivf, vectors.faiss.extract_index_ivf(ivf).nlist)
    queries = _unit(20, seed=2)
    assert np.array_equal(exact.search(queries, 10)[1], ivf.search(queries, 10)[1])


def test_ivf_index_follows_updates_and_deletions(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    _grow(corpus, 200)
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False, index_type="ivf")
    assert _meta(tmp_path / "idx").index_type == vectors.IVF
    assert vectors.faiss.extract_index_ivf(Snapshot.open(tmp_path / "idx").vectors.index).nlist > 1
    shutil.copy(FIXTURES / "sample.md", corpus / "sample.txt")
    (corpus / "note3.txt").unlink()
    index.ingest([corpus], progress=False)  # no flag: the recorded policy holds
    assert _meta(tmp_path / "idx").index_type == vectors.IVF
    assert not [h for h in index.search("word3", k=20, mode="dense") if h.source.endswith("note3.txt")]
    Index(tmp_path / "clean", embedder=fake).ingest([corpus], progress=False)
    assert chunk_set(tmp_path / "idx") == chunk_set(tmp_path / "clean")


def test_auto_switches_at_the_threshold_and_flat_can_be_forced(tmp_path: Path, corpus: Path, fake: FakeEmbedder,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "IVF_MIN_VECTORS", 40)
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    assert _meta(tmp_path / "idx").index_type == vectors.FLAT
    _grow(corpus, 60)
    index.ingest([corpus], progress=False)
    meta = _meta(tmp_path / "idx")
    assert (meta.index_type, meta.index_policy) == (vectors.IVF, "auto") and meta.ivf_trained_on >= 40
    report = index.ingest([corpus], progress=False, index_type="flat")  # no file changed, policy did
    assert report.snapshot is not None and _meta(tmp_path / "idx").index_type == vectors.FLAT
    assert chunk_set(tmp_path / "idx")


def test_ivf_is_retrained_after_growing(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    _grow(corpus, 20)
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False, index_type="ivf")
    first = _meta(tmp_path / "idx").ivf_trained_on
    _grow(corpus, vectors.RETRAIN_GROWTH * 30, start=20)
    index.ingest([corpus], progress=False)
    assert _meta(tmp_path / "idx").ivf_trained_on > vectors.RETRAIN_GROWTH * first


def test_unknown_index_type_is_a_clear_error(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    with pytest.raises(ValueError, match="unknown index type 'hnsw'.*auto, flat, ivf"):
        Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False, index_type="hnsw")


def test_ivf_records_a_proportional_nprobe(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    _grow(corpus, 200)
    Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False, index_type="ivf")
    snap = Snapshot.open(tmp_path / "idx")
    ivf = vectors.faiss.extract_index_ivf(snap.vectors.index)
    assert snap.meta.nprobe == ivf.nprobe == max(64, -(-ivf.nlist // 10))


def test_ivfpq_with_exact_reranking_and_shards_find_the_true_neighbours() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32))
    base = (centres[rng.integers(0, 50, 6000)] + 0.3 * rng.normal(size=(6000, 32))).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    ids = np.arange(6000, dtype=np.int64) * 7 + 3  # the chunks' own ids, not positions
    queries = base[:40] + 0.05 * rng.normal(size=(40, 32)).astype(np.float32)
    truth = ids[np.argsort(-(queries @ base.T), axis=1)[:, :10]]
    exact = np.zeros((ids.max() + 1, 32), np.float32)
    exact[ids] = base

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))

    pq = vectors.build_ivfpq(32, ids, base, m=8)
    raw = recall(pq.search(queries, 10)[1])
    scores, refined = vectors.search_refined(pq, exact.__getitem__, queries, 10)
    assert recall(refined) >= 0.95 > raw  # 8 bytes a vector lose neighbours; re-ranking brings them back
    assert np.allclose(scores[:, 0], np.einsum("ij,ij->i", exact[refined[:, 0]], queries), atol=1e-5)
    shards = vectors.build_shards(32, ids, base, 3, lambda d, i, v: vectors.build_ivfpq(d, i, v, m=8))
    assert shards.ntotal == 6000 and recall(vectors.search_refined(shards, exact.__getitem__, queries, 10)[1]) >= 0.95


def _as_embedded(found: np.ndarray, fake: FakeEmbedder) -> bool:
    """Whether each row is exactly the vector of a text the embedder was given (a chunk with its
    context line), not a vector decoded from its compressed code."""
    embedded = fake.embed(list(dict.fromkeys(fake.embedded)))
    return bool(np.allclose((found @ embedded.T).max(axis=1), 1.0, atol=1e-5))


def test_ivfpq_index_type_reranks_with_exact_vectors_and_stays_incremental(
        tmp_path: Path, corpus: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "IVFPQ_MIN_VECTORS", 300)
    _grow(corpus, 320)
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False, index_type="ivfpq")
    snap = Snapshot.open(tmp_path / "idx")
    assert (snap.meta.index_type, snap.meta.index_policy) == (vectors.IVFPQ, "ivfpq")
    assert 300 <= snap.meta.ivf_trained_on < 310  # converted during the build, at the minimum: no big flat index
    assert vectors.faiss.extract_index_ivf(snap.vectors.index).code_size == vectors.pq_bytes(fake.dim) == 64
    ids = vectors.stored_ids(snap.vectors.index)
    exact = snap.catalog.exact.get(ids)
    assert _as_embedded(exact, fake)  # the vectors as embedded, not decoded
    queries = fake.embed([f"word{i} topic" for i in range(0, 320, 16)])
    truth = [set(ids[np.argsort(-(exact @ q))[:5]].tolist()) for q in queries]
    found = snap.search(queries, 5)
    # >= 0.8: the fake's hashed vectors give each note a dimension of its own, which a codebook trained
    # before that note was added cannot encode (real vectors: recall@10 0.93, benchmarks/scale.py)
    assert np.mean([len({i for i, _ in f} & t) / 5 for f, t in zip(found, truth, strict=True)]) >= 0.8
    row = {int(i): n for n, i in enumerate(ids)}
    scores = [(s, float(exact[row[i]] @ q)) for f, q in zip(found, queries, strict=True) for i, s in f]
    assert all(s == pytest.approx(e, abs=1e-6) for s, e in scores)  # exact scores, not the codes' estimates
    snap.close()

    (corpus / "note3.txt").unlink()  # incremental: a removal and an addition keep PQ codes and exact rows in step
    added = "Harbour pilots board incoming tankers at the outer buoy before dawn."
    (corpus / "added.txt").write_text(added)
    index.ingest([corpus], progress=False)
    assert _meta(tmp_path / "idx").index_type == vectors.IVFPQ
    assert not [h for h in index.search("word3", k=20, mode="dense") if h.source.endswith("note3.txt")]
    assert index.search(added, k=1, mode="dense")[0].source.endswith("added.txt")
    Index(tmp_path / "clean", embedder=fake).ingest([corpus], progress=False)
    assert chunk_set(tmp_path / "idx") == chunk_set(tmp_path / "clean")  # also checks the exact rows

    index.ingest([corpus], progress=False, index_type="flat")  # back to exact, from the kept vectors
    snap = Snapshot.open(tmp_path / "idx")
    _, got = vectors.contents(snap.vectors.index)
    assert snap.meta.index_type == vectors.FLAT and _as_embedded(got, fake)
    assert chunk_set(tmp_path / "idx") == chunk_set(tmp_path / "clean")


def test_ivfpq_is_retrained_from_its_exact_vectors_a_batch_at_a_time(
        tmp_path: Path, corpus: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "IVFPQ_MIN_VECTORS", 300)
    monkeypatch.setattr(vectors, "PQ_BATCH", 400)
    _grow(corpus, 320)
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False, index_type="ivfpq")
    _grow(corpus, 1000, start=320)
    index.ingest([corpus], progress=False)
    snap = Snapshot.open(tmp_path / "idx")
    assert snap.meta.index_type == vectors.IVFPQ and snap.meta.ivf_trained_on == snap.chunk_count() > 1300
    ids = vectors.stored_ids(snap.vectors.index)
    query = fake.embed(["Note 1234 concerns topic 2: " + "word1234 " * 40])
    assert snap.search(query, 1)[0][0][1] == pytest.approx(1.0, abs=1e-5)  # found, scored exactly
    Index(tmp_path / "clean", embedder=fake).ingest([corpus], progress=False)
    assert chunk_set(tmp_path / "idx") == chunk_set(tmp_path / "clean") and len(set(ids.tolist())) == len(ids)


def test_ivfpq_below_its_minimum_is_exact_and_a_missing_exact_row_is_reported(
        tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False, index_type="ivfpq")
    assert (_meta(tmp_path / "idx").index_type, _meta(tmp_path / "idx").index_policy) == (vectors.FLAT, "ivfpq")
    db = sqlite3.connect(":memory:")
    db.execute(catalog._EXACT)
    db.execute("INSERT INTO exact VALUES (1, ?)", (np.ones(4, np.float32).tobytes(),))
    assert catalog.ExactTable(db).get(np.array([1])).tolist() == [[1.0] * 4]
    with pytest.raises(store.IndexCorrupt, match="no exact vector for chunk 2.*--rebuild"):
        catalog.ExactTable(db).get(np.array([1, 2]))


def test_pq_bytes_divide_the_dimension() -> None:
    assert [vectors.pq_bytes(d) for d in (384, 768, 512, 100, 7)] == [48, 96, 64, 10, 1]


class DictExact:
    """ExactVectors in a dict (the store keeps them in SQLite)."""

    def __init__(self) -> None:
        self.rows: dict[int, np.ndarray] = {}

    def put(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self.rows |= {int(i): v for i, v in zip(ids, vecs, strict=True)}

    def get(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self.rows[int(i)] for i in ids], dtype=np.float32).reshape(len(ids), -1)

    def ids(self) -> np.ndarray:
        return np.array(sorted(self.rows), dtype=np.int64)

    def delete(self, ids: np.ndarray) -> None:
        for i in ids:
            del self.rows[int(i)]

    def clear(self) -> None:
        self.rows.clear()


def test_every_kind_behind_one_protocol_moves_its_vectors_to_another_kind() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(12_000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(100, 100 + len(vecs), dtype=np.int64)
    exact = DictExact()
    index: vectors.VectorIndex = vectors.FlatVectors(vectors.new_flat(32))
    index.add(ids, vecs, exact)
    assert vectors.switch_now("ivfpq", index) and not vectors.switch_now("auto", index)
    for kind in (vectors.IVFPQ, vectors.IVF, vectors.FLAT, vectors.IVFPQ):
        index = vectors.rebuild(index, kind, 32, exact)
        assert index.kind == kind and index.ntotal == len(ids)
        assert len(exact.rows) == (len(ids) if index.keeps_exact else 0)  # exact vectors kept only where needed
        vectors.set_nprobe(index.index, 64)
        _, found = index.search(vecs[:5], 1, exact)
        assert found[:, 0].tolist() == ids[:5].tolist()
    index.remove(ids[:1], exact)
    assert index.ntotal == len(exact.rows) == len(ids) - 1
    assert vectors.rebuild(index, vectors.IVFPQ, 32, exact).ntotal == len(ids) - 1


def test_the_store_never_branches_on_the_index_kind() -> None:
    source = Path(store.__file__).read_text()
    code = source.split("class Snapshot", 1)[1]  # IndexMeta above records the kind (flat by default)
    assert not re.search(r"vectors\.(IVFPQ|IVF|FLAT)\b|index_type ==", code)
