"""FAISS vector indexes keyed by chunk id: exact (flat inner product) or approximate (IVF-Flat,
IVF-PQ), one class per kind behind one protocol (`VectorIndex`: build, add, remove, search,
retrained), chosen by `KINDS` and `rebuild`; the store never branches on the kind.

All support adding and removing ids in place, which incremental ingest needs. The IVF-Flat
index stores full vectors in its lists, so its scores are exact; it is only approximate in
which lists (nprobe of nlist) a query visits. IVF-PQ stores a few bytes per vector (48, a 32nd of
MiniLM's 1,536), for indexes larger than memory: its scores are approximate, so its best
candidates are re-ranked with the exact vectors, which the store keeps on disk. Trained
indexes are retrained from their vectors when they have grown RETRAIN_GROWTH times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Protocol

import faiss
import numpy as np

from rag import threads

FLAT = "flat-ip"
IVF = "ivf-flat"
IVFPQ = "ivf-pq"
TRAINED = (IVF, IVFPQ)
POLICIES = ("auto", "flat", "ivf", "ivfpq")
IVF_MIN_VECTORS = 100_000  # "auto" switches to IVF from this many chunks on
IVFPQ_MIN_VECTORS = 10_000  # "ivfpq" below this is exact: PQ's 256 centroids want 39 training points each
REFINE_CANDIDATES = 100  # IVF-PQ candidates re-ranked exactly: recall@10 0.93 at 1M (benchmarks/scale.py)
RETRAIN_GROWTH = 4
DEFAULT_NPROBE = 16  # for an exact index it has no effect; an IVF gets default_nprobe(nlist)
_MIN_IVF_NPROBE = 64  # small IVFs: a tenth of 400 lists (10k vectors) gave recall@10 0.942 only
_POINTS_PER_LIST = 39  # FAISS's minimum training points per list
_TRAIN_PER_LIST = 64  # k-means sample per list: all 1M points for nlist 4,000 would take many minutes
PQ_BATCH = 50_000  # exact vectors read at a time to refill a retrained IVF-PQ (75 MB for MiniLM)


class ExactVectors(Protocol):
    """Where an index whose lists hold only codes keeps its exact vectors (the store's SQLite table)."""

    def put(self, ids: np.ndarray, vecs: np.ndarray) -> None: ...

    def get(self, ids: np.ndarray) -> np.ndarray: ...  # float32 rows in the order of `ids`

    def ids(self) -> np.ndarray: ...  # ascending

    def delete(self, ids: np.ndarray) -> None: ...

    def clear(self) -> None: ...


class VectorIndex(Protocol):
    kind: ClassVar[str]
    keeps_exact: ClassVar[bool]  # its exact vectors live in ExactVectors, not in its lists
    index: faiss.Index  # what is written to and read from disk

    @property
    def ntotal(self) -> int: ...

    def add(self, ids: np.ndarray, vecs: np.ndarray, exact: ExactVectors) -> None: ...

    def remove(self, ids: np.ndarray, exact: ExactVectors) -> None: ...

    def search(self, queries: np.ndarray, k: int, exact: ExactVectors) -> tuple[np.ndarray, np.ndarray]: ...

    def contents(self, exact: ExactVectors) -> tuple[np.ndarray, np.ndarray]: ...

    def retrained(self, dim: int, exact: ExactVectors) -> VectorIndex: ...


class FlatVectors:
    """Exact inner product over every vector: IndexIDMap2(IndexFlatIP)."""

    kind: ClassVar[str] = FLAT
    keeps_exact: ClassVar[bool] = False

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vecs: np.ndarray, exact: ExactVectors) -> VectorIndex:
        """A new index of this kind holding (and trained on) `vecs` under `ids`."""
        return cls(build(cls.kind, dim, ids, vecs))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vecs: np.ndarray, exact: ExactVectors) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray, exact: ExactVectors) -> None:
        self.index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]

    def search(self, queries: np.ndarray, k: int, exact: ExactVectors) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)

    def contents(self, exact: ExactVectors) -> tuple[np.ndarray, np.ndarray]:
        return contents(self.index)

    def retrained(self, dim: int, exact: ExactVectors) -> VectorIndex:
        ids, vecs = self.contents(exact)
        return self.build(dim, ids, vecs, exact)


class IVFFlatVectors(FlatVectors):
    """IVF with full vectors in its lists: exact scores, approximate only in which lists are visited."""

    kind: ClassVar[str] = IVF


class IVFPQVectors(FlatVectors):
    """IVF-PQ: codes in memory, exact vectors in `ExactVectors`, the best candidates re-ranked with them."""

    kind: ClassVar[str] = IVFPQ
    keeps_exact: ClassVar[bool] = True

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vecs: np.ndarray, exact: ExactVectors) -> VectorIndex:
        exact.put(ids, vecs)
        return cls(build_ivfpq(dim, ids, vecs, pq_bytes(dim)))

    def add(self, ids: np.ndarray, vecs: np.ndarray, exact: ExactVectors) -> None:
        super().add(ids, vecs, exact)
        exact.put(ids, vecs)

    def remove(self, ids: np.ndarray, exact: ExactVectors) -> None:
        super().remove(ids, exact)
        exact.delete(ids)

    def search(self, queries: np.ndarray, k: int, exact: ExactVectors) -> tuple[np.ndarray, np.ndarray]:
        return search_refined(self.index, exact.get, queries, k)

    def contents(self, exact: ExactVectors) -> tuple[np.ndarray, np.ndarray]:
        ids = exact.ids()
        return ids, exact.get(ids)

    def retrained(self, dim: int, exact: ExactVectors) -> VectorIndex:
        """Trained on a sample of the exact vectors and filled a batch at a time: memory holds the
        sample and one batch, never every vector."""
        ids = exact.ids()
        sample = np.random.default_rng(0).choice(ids, min(len(ids), pq_training_size(len(ids))), replace=False)
        index = empty_ivfpq(dim, len(ids), exact.get(np.sort(sample)), pq_bytes(dim))
        for first in range(0, len(ids), PQ_BATCH):
            part = ids[first: first + PQ_BATCH]
            index.add_with_ids(exact.get(part), part)
        return IVFPQVectors(index)


KINDS: dict[str, type[FlatVectors]] = {c.kind: c for c in (FlatVectors, IVFFlatVectors, IVFPQVectors)}


def opened(kind: str, index: faiss.Index) -> VectorIndex:
    """An index read from disk, as the class of its recorded kind."""
    return KINDS[kind](index)


def rebuild(current: VectorIndex, kind: str, dim: int, exact: ExactVectors) -> VectorIndex:
    """`current`'s vectors in an index of `kind`: retrained in place of its kind, or moved to another."""
    if kind == current.kind:
        return current.retrained(dim, exact)
    ids, vecs = current.contents(exact)
    exact.clear()
    return KINDS[kind].build(dim, ids, vecs, exact)


def switch_now(policy: str, current: VectorIndex) -> bool:
    """Whether to leave `current` before publishing: an index that keeps its vectors on disk is
    moved to as soon as the policy wants it, so they stop filling memory."""
    wanted = KINDS[wanted_kind(policy, current.ntotal)]
    return wanted.keeps_exact and not current.keeps_exact


def new_flat(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def wanted_kind(policy: str, n: int) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown index type {policy!r}; choose one of {', '.join(POLICIES)}")
    if policy == "ivfpq":
        return IVFPQ if n >= IVFPQ_MIN_VECTORS else FLAT
    ivf = policy == "ivf" or (policy == "auto" and n >= IVF_MIN_VECTORS)
    return IVF if ivf and n > 0 else FLAT


def needs_rebuild(kind_now: str, kind_wanted: str, n: int, trained_on: int) -> bool:
    return kind_now != kind_wanted or (kind_wanted in TRAINED and n > RETRAIN_GROWTH * max(trained_on, 1))


def contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of everything stored, in no particular order. Not for IVF-PQ, whose lists
    hold codes, not vectors."""
    if isinstance(index, faiss.IndexIDMap2):
        flat = faiss.downcast_index(index.index)
        return stored_ids(index), (flat.reconstruct_n(0, index.ntotal) if index.ntotal
                                   else np.zeros((0, index.d), np.float32))
    ivf: Any = faiss.extract_index_ivf(index)
    if ivf.invlists.code_size != 4 * ivf.d:
        raise ValueError("a compressed index holds codes, not vectors: read the exact vectors kept beside it")
    codes = [_list(ivf, i, "codes") for i in range(ivf.nlist)]
    return stored_ids(index), np.concatenate([np.zeros(0, np.uint8), *codes]).view(np.float32).reshape(-1, ivf.d)


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The ids of everything stored, in the order `contents` gives the vectors."""
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    return np.concatenate([np.zeros(0, np.int64), *(_list(ivf, i, "ids") for i in range(ivf.nlist))])


def _list(ivf: Any, i: int, what: str) -> np.ndarray:
    """A copy of inverted list i's ids (int64) or codes (bytes)."""
    lists, n = ivf.invlists, ivf.invlists.list_size(i)
    if what == "ids":
        return faiss.rev_swig_ptr(lists.get_ids(i), n).copy() if n else np.zeros(0, np.int64)
    return faiss.rev_swig_ptr(lists.get_codes(i), n * lists.code_size).copy() if n else np.zeros(0, np.uint8)


def build(kind: str, dim: int, ids: np.ndarray, vectors: np.ndarray, seed: int = 0) -> faiss.Index:
    """A new index of `kind` holding `vectors` under `ids`."""
    n = len(ids)
    if kind == IVFPQ:
        return build_ivfpq(dim, ids, vectors, pq_bytes(dim), seed)
    if kind == FLAT:
        index = new_flat(dim)
    else:
        nlist = _nlist(n)
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        _train(index, vectors, _TRAIN_PER_LIST * nlist, seed)
        _removable(index)
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def _nlist(n: int) -> int:
    return max(1, min(int(4 * math.sqrt(n)), n // _POINTS_PER_LIST))


def _removable(index: faiss.Index) -> None:
    """Removing an id finds its list through a hash table instead of scanning every list."""
    faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]


def pq_bytes(dim: int) -> int:
    """PQ sub-quantisers for `dim`: the largest divisor of dim up to dim / 8 (48 for 384), as PQ
    needs; 8 dimensions a byte kept recall@10 at 0.93 after re-ranking on 1M MiniLM vectors."""
    return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


def _train(index: faiss.Index, vectors: np.ndarray, size: int, seed: int) -> None:
    """Train on a seeded sample of `size` rows, kept in their order."""
    sample = np.random.default_rng(seed).choice(len(vectors), size=min(len(vectors), size), replace=False)
    index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))


def default_nprobe(index: faiss.Index) -> int:
    """Visit a tenth of the lists, at least 64: on 100,000 real MiniLM vectors (nlist 1,264) that gave
    recall@10 0.98 against exact search; on 1M vectors a query takes 14 ms against 112 ms for exact
    search (benchmarks/vectors.py and search.py)."""
    if isinstance(index, faiss.IndexIDMap2):
        return DEFAULT_NPROBE
    return max(_MIN_IVF_NPROBE, math.ceil(faiss.extract_index_ivf(index).nlist / 10))


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """How many IVF lists a query visits (no effect on an exact index)."""
    if not isinstance(index, faiss.IndexIDMap2):
        faiss.extract_index_ivf(index).nprobe = nprobe


# --- beyond one machine's memory: compressed lists, exact re-ranking, shards ---------------------


def build_ivfpq(dim: int, ids: np.ndarray, vecs: np.ndarray, m: int = 48, seed: int = 0) -> faiss.Index:
    """IVF with product-quantised lists: `m` bytes per vector instead of 4 x dim (48 vs 1,536 for
    MiniLM), so a million chunks take ~75 MB of RAM (15 of them the id table that lets removals
    find their list). Scores are approximate; `search_refined` re-ranks the best candidates with
    the exact vectors, which can stay on disk."""
    index = empty_ivfpq(dim, len(ids), vecs, m, seed)
    index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def empty_ivfpq(dim: int, n: int, sample: np.ndarray, m: int, seed: int = 0) -> faiss.Index:
    """An IVF-PQ sized for `n` vectors, trained on (a seeded part of) `sample`, holding none yet:
    vectors can then be added in batches, so building never needs them all in memory."""
    nlist = _nlist(n)
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{m}", faiss.METRIC_INNER_PRODUCT)
    index.do_polysemous_training = False  # type: ignore[attr-defined]  # unused Hamming filter; most of the training
    _train(index, sample, pq_training_size(n), seed)
    _removable(index)
    faiss.extract_index_ivf(index).nprobe = default_nprobe(index)
    return index


def pq_training_size(n: int) -> int:
    """The k-means sample for `n` vectors; PQ's 256 centroids want 39 points each."""
    return max(_TRAIN_PER_LIST * _nlist(n), 256 * 39)


def search_refined(index: faiss.Index, exact: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, k: int,
                   candidates: int = REFINE_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k best for each query: `candidates` from the approximate `index`, re-scored
    with `exact(ids)`, their float32 vectors in the order asked (rows of a memory-mapped file or of
    a table: only the candidates are read). Ids are asked in ascending order, as storage lies."""
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), max(k, candidates))
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    for row, (query, cands) in enumerate(zip(queries, found, strict=True)):
        cands = np.sort(cands[cands >= 0])  # in file order: a memory map reads forward
        exact_scores = np.asarray(exact(cands), dtype=np.float32) @ query
        best = np.argsort(-exact_scores)[:k]
        scores[row, : len(best)], ids[row, : len(best)] = exact_scores[best], cands[best]
    return scores, ids


def build_shards(dim: int, ids: np.ndarray, vecs: np.ndarray, shards: int,
                 builder: Any = build_ivfpq) -> faiss.Index:
    """`shards` indexes, each built by `builder` from a slice of the vectors in its own thread
    (FAISS frees the GIL while it trains and adds), searched as one by faiss.IndexShards. On one
    machine this builds in parallel; the same split is how an index spreads over machines."""
    cores = threads.available()
    workers = min(shards, cores)

    def build(part: np.ndarray) -> faiss.Index:
        faiss.omp_set_num_threads(max(1, cores // workers))  # this thread's share: no oversubscription
        return builder(dim, ids[part], vecs[part])

    parts = np.array_split(np.arange(len(ids)), shards)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        built = list(pool.map(build, parts))
    joined = faiss.IndexShards(dim, True, False)  # type: ignore[call-arg]  # threaded search; ids kept
    for shard in built:
        joined.add_shard(shard)  # the Python wrapper keeps a reference: the shards live as long as `joined`
    return joined
