"""Question answering over your own documents, with answers you can check.

    from rag import Index
    index = Index("indexes/default")
    index.ingest(["corpus/"])
    hits = index.search("How long do external transfers take?", k=5)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.index import Index, IndexInfo
    from rag.ingest.chunker import ChunkConfig
    from rag.ingest.work import IngestReport
    from rag.retrieve import Hit
    from rag.store import IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound, StoreError

# Loaded on first use, so that a process needing one small module (a parser worker) starts fast.
_HOMES = {"Index": "rag.index", "IndexInfo": "rag.index", "ChunkConfig": "rag.ingest.chunker",
          "IngestReport": "rag.ingest.work", "Hit": "rag.retrieve", "IndexCorrupt": "rag.store",
          "IndexLocked": "rag.store", "IndexMismatch": "rag.store", "IndexNotFound": "rag.store",
          "StoreError": "rag.store"}
__all__ = ["ChunkConfig", "Hit", "Index", "IndexCorrupt", "IndexInfo", "IndexLocked", "IndexMismatch",
           "IndexNotFound", "IngestReport", "StoreError"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
