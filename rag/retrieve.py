"""Retrievers: a query in, ranked chunks out."""

from __future__ import annotations

from dataclasses import dataclass

from rag.embed import Embedder
from rag.store import Snapshot


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    chunk_id: int
    source: str  # the file's absolute path
    page: int | None
    start: int  # character offsets into the file's extracted text
    end: int
    score: float  # cosine similarity for dense search
    heading: str
    text: str


class DenseRetriever:
    """Nearest chunks by cosine similarity of embeddings."""

    def __init__(self, snapshot: Snapshot, embedder: Embedder) -> None:
        self.snapshot = snapshot
        self.embedder = embedder

    def search(self, query: str, k: int = 5) -> list[Hit]:
        if not query.strip():
            raise ValueError("the query is empty")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scored = self.snapshot.search(self.embedder.embed([query]), k)[0]
        records = {r.id: r for r in self.snapshot.chunks([cid for cid, _ in scored])}
        hits: list[Hit] = []
        for cid, score in scored:
            if (r := records.get(cid)) is not None:
                hits.append(Hit(len(hits) + 1, cid, r.path, r.page, r.start, r.end, score, r.heading, r.text))
        return hits
