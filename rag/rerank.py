"""Rerankers: rescore a first-stage retriever's top hits with a cross-encoder.

A cross-encoder reads the query and a passage together, so it judges relevance better
than comparing two separately made embeddings, at the price of one model call per
passage; it therefore only sees the first stage's best `top_n` hits. Any
sentence-transformers `CrossEncoder` works (packaged name, local folder or hub id), and
so does a folder written by `rag train reranker`: fine-tuned weights over a base model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any, Protocol

from rag import crossencoder, models
from rag.retrieve import Hit, Retriever, check_query

# A widely used MiniLM cross-encoder (hub id: needs the hub once). The project's own, trained by
# `rag train reranker`, is not shipped: it ranked worse than no reranking on SQuAD (see docs/benchmarks.md).
DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L6-v2"
DEFAULT_TOP_N = 20
SPEC = "reranker.json"  # marks a folder of `rag train reranker` weights: {"base": model name, "max_length": ...}


class Reranker(Protocol):
    name: str

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """Relevance of each text to the query; higher is better."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder, loaded when first used."""

    def __init__(self, name: str = DEFAULT_RERANKER, device: str | None = None, batch_size: int = 32) -> None:
        self.name = name
        self.path = models.resolve(name)
        self.device = device
        self.batch_size = batch_size

    @cached_property
    def model(self) -> Any:
        return crossencoder.load(self.path, SPEC, self.device)

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        pairs = [(query, text) for text in texts]
        return [float(s) for s in self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)]


class RerankingRetriever:
    """Any retriever's best `top_n` hits reordered by a reranker, followed by the rest of the
    first stage's hits in their own order. Reranked hits carry the reranker's score as `score`
    and `rerank_score`; every hit keeps its first-stage rank (`first_rank`) and method scores."""

    def __init__(self, first: Retriever, reranker: Reranker, top_n: int = DEFAULT_TOP_N) -> None:
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        self.first = first
        self.reranker = reranker
        self.top_n = top_n

    def search(self, query: str, k: int = 5) -> list[Hit]:
        check_query(query, k)
        hits = self.first.search(query, max(k, self.top_n))
        head, tail = hits[: self.top_n], hits[self.top_n:]
        scores = self.reranker.scores(query, [h.text for h in head])
        order = sorted(range(len(head)), key=lambda i: -scores[i])
        reranked = [replace(head[i], score=scores[i], rerank_score=scores[i]) for i in order]
        return [replace(h, rank=rank, first_rank=h.rank) for rank, h in enumerate([*reranked, *tail][:k], 1)]
