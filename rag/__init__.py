"""Question answering over your own documents, with answers you can check.

    from rag import Index
    index = Index("indexes/default")
    index.ingest(["corpus/"])
    hits = index.search("How long do external transfers take?", k=5)
"""

from rag.index import Index, IndexInfo
from rag.ingest.chunker import ChunkConfig
from rag.ingest.pipeline import IngestReport
from rag.retrieve import Hit
from rag.store import IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound, StoreError

__all__ = ["ChunkConfig", "Hit", "Index", "IndexCorrupt", "IndexInfo", "IndexLocked", "IndexMismatch",
           "IndexNotFound", "IngestReport", "StoreError"]
