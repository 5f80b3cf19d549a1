"""BM25 over chunk texts (bm25s), stored in each snapshot beside the vectors.

Chunk texts are turned into terms once, at ingest (lowercased, English stopwords
dropped, Snowball-stemmed); the terms are kept in SQLite so that publishing a
snapshot rebuilds the BM25 matrix without tokenizing unchanged chunks again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = "bm25"
IDS = "chunk_ids.npy"  # chunk id of each BM25 document, in index order
logging.getLogger("bm25s").setLevel(logging.WARNING)


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def terms(texts: Sequence[str]) -> list[list[str]]:
    """The BM25 terms of each text; queries and chunks go through the same function."""
    import bm25s

    out = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
    return [list(t) for t in out]


def fit(term_lists: list[list[str]]) -> Any:
    """An in-memory BM25 model (bm25s) over `term_lists`."""
    import bm25s

    model = bm25s.BM25()
    model.index(term_lists, show_progress=False)
    return model


def top(model: Any, queries: Sequence[str], k: int, documents: int) -> list[list[int]]:
    """Positions of the best min(k, documents) documents of an in-memory model (`fit`) for each
    query; a query with no terms left (all stopwords) asks for "the", so every query gets a row."""
    found, _ = model.retrieve([q or ["the"] for q in terms(queries)], k=min(k, documents), show_progress=False)
    return [list(row) for row in found]


def build(folder: Path, chunk_ids: np.ndarray, term_lists: list[list[str]]) -> list[str]:
    """Write a BM25 index of `term_lists` into `folder`; returns the files written (relative)."""
    folder.mkdir()
    np.save(folder / IDS, np.asarray(chunk_ids, dtype=np.int64), allow_pickle=False)
    if len(term_lists):
        fit(term_lists).save(str(folder), show_progress=False)
    return sorted(str(p.relative_to(folder.parent)) for p in folder.iterdir())


class LexicalIndex:
    """A loaded BM25 index; `search` maps BM25 documents back to chunk ids."""

    def __init__(self, folder: Path) -> None:
        import bm25s

        self.chunk_ids = np.load(folder / IDS, allow_pickle=False)
        self.model = bm25s.BM25.load(str(folder), show_progress=False) if len(self.chunk_ids) else None

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of up to k chunks sharing a term with `query`, best first."""
        if self.model is None:
            return []
        query_terms = [t for t in terms([query])[0] if t in self.model.vocab_dict]
        if not query_terms:
            return []
        docs, scores = self.model.retrieve([query_terms], k=min(k, len(self.chunk_ids)), show_progress=False,
                                           n_threads=0)
        return [(int(self.chunk_ids[d]), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
