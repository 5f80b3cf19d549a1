"""Retrievers: a query in, ranked chunks out. Dense, BM25, and their fusion (hybrid).

Every hit keeps the rank and score each method gave it, so a reader can see why a
passage was chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from rag.embed import Embedder
from rag.store import Snapshot

MODES = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    chunk_id: int
    source: str  # the file's absolute path
    page: int | None
    start: int  # character offsets into the file's extracted text
    end: int
    score: float  # of the mode asked for: cosine (dense), BM25 (bm25), fused RRF (hybrid) or the reranker's
    heading: str
    text: str
    dense_rank: int | None = None  # None: not among that method's candidates
    dense_score: float | None = None
    bm25_rank: int | None = None
    bm25_score: float | None = None
    first_rank: int | None = None  # when reranked: the rank before reranking
    rerank_score: float | None = None


@dataclass(frozen=True)
class FusionConfig:
    """Defaults chosen on the HaluEval dev rows (benchmarks/fusion_sweep.py), not on SQuAD:
    the textbook k=60 with equal weights ranked below BM25 alone there (nDCG@10 0.970 vs 0.975),
    k=10 with BM25 weighted twice reached 0.981."""

    rrf_k: int = 10
    dense_weight: float = 1.0
    bm25_weight: float = 2.0
    depth: int = 50  # candidates taken from each method before fusing


class Retriever(Protocol):
    def search(self, query: str, k: int = 5) -> list[Hit]: ...


def check_query(query: str, k: int) -> None:
    if not query.strip():
        raise ValueError("the query is empty")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _hits(snapshot: Snapshot, scored: list[tuple[int, float]], extra: Mapping[int, dict[str, object]]) -> list[Hit]:
    """Hits for (chunk id, score) pairs, best first, with each one's per-method ranks."""
    records = {r.id: r for r in snapshot.chunks([cid for cid, _ in scored])}
    hits: list[Hit] = []
    for cid, score in scored:
        if (r := records.get(cid)) is not None:
            hit = Hit(len(hits) + 1, cid, r.path, r.page, r.start, r.end, score, r.heading, r.text)
            hits.append(replace(hit, **extra.get(cid, {})))  # type: ignore[arg-type]
    return hits


class _OneMethod:
    """A retriever that ranks by one method; `ranked` is what hybrid fusion consumes."""

    method: str
    snapshot: Snapshot

    def ranked(self, query: str, depth: int) -> list[tuple[int, float]]:
        raise NotImplementedError

    def search(self, query: str, k: int = 5) -> list[Hit]:
        check_query(query, k)
        scored = self.ranked(query, k)
        return _hits(self.snapshot, scored, _ranks(self.method, scored))


class DenseRetriever(_OneMethod):
    """Nearest chunks by cosine similarity of embeddings."""

    method = "dense"

    def __init__(self, snapshot: Snapshot, embedder: Embedder) -> None:
        self.snapshot = snapshot
        self.embedder = embedder

    def ranked(self, query: str, depth: int) -> list[tuple[int, float]]:
        return self.snapshot.search(self.embedder.embed([query]), depth)[0]


class BM25Retriever(_OneMethod):
    """Chunks ranked by BM25 over stemmed terms."""

    method = "bm25"

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def ranked(self, query: str, depth: int) -> list[tuple[int, float]]:
        return self.snapshot.lexical.search(query, depth)


class HybridRetriever:
    """Dense and BM25 candidates fused by weighted reciprocal rank fusion."""

    def __init__(self, dense: DenseRetriever, bm25: BM25Retriever, config: FusionConfig = FusionConfig()) -> None:
        self.dense = dense
        self.bm25 = bm25
        self.config = config

    def search(self, query: str, k: int = 5) -> list[Hit]:
        check_query(query, k)
        depth = max(k, self.config.depth)
        dense, bm25 = self.dense.ranked(query, depth), self.bm25.ranked(query, depth)
        fused = rrf({"dense": [c for c, _ in dense], "bm25": [c for c, _ in bm25]},
                    {"dense": self.config.dense_weight, "bm25": self.config.bm25_weight}, self.config.rrf_k)[:k]
        extra = _ranks("dense", dense)
        for cid, fields in _ranks("bm25", bm25).items():
            extra.setdefault(cid, {}).update(fields)
        return _hits(self.dense.snapshot, fused, extra)


def rrf(rankings: Mapping[str, list[int]], weights: Mapping[str, float], k: int = 60) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: score(d) = sum over methods of weight / (k + rank of d).
    Ties keep the order in which ids were first seen."""
    scores: dict[int, float] = {}
    for method, ids in rankings.items():
        for rank, cid in enumerate(ids, 1):
            scores[cid] = scores.get(cid, 0.0) + weights.get(method, 1.0) / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def _ranks(method: str, scored: list[tuple[int, float]]) -> dict[int, dict[str, object]]:
    return {cid: {f"{method}_rank": rank, f"{method}_score": score} for rank, (cid, score) in enumerate(scored, 1)}
