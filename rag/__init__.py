"""Question answering over your own documents, with answers you can check.

    from rag import Answer, Delta, Index, Pipeline
    index = Index("indexes/default")
    index.ingest(["corpus/"])                          # only new or changed files are embedded
    hits = index.search("How long do external transfers take?", k=5)
    answers = Pipeline.default(index)                  # the shipped generator, reader and verifier
    answer = answers.ask("How long do external transfers take?")
    for event in answers.stream("What is the daily transfer limit?"):
        match event:
            case Delta(text=text): print(text, end="")  # the draft, as it is written
            case Answer(): print(event.answer, event.citations)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.answer import Answer, AnswerConfig, Delta, Event
    from rag.conversation import Turn
    from rag.errors import IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound, StoreError
    from rag.index import Index, IndexInfo
    from rag.ingest.chunker import ChunkConfig
    from rag.ingest.work import IngestReport
    from rag.pipeline import Pipeline
    from rag.retrieve import Hit
    from rag.settings import Settings

# Loaded on first use, so that a process needing one small module (a parser worker) starts fast.
_HOMES = {"Index": "rag.index", "IndexInfo": "rag.index", "ChunkConfig": "rag.ingest.chunker",
          "IngestReport": "rag.ingest.work", "Hit": "rag.retrieve", "IndexCorrupt": "rag.errors",
          "IndexLocked": "rag.errors", "IndexMismatch": "rag.errors", "IndexNotFound": "rag.errors",
          "StoreError": "rag.errors", "Pipeline": "rag.pipeline", "Answer": "rag.answer", "AnswerConfig": "rag.answer",
          "Delta": "rag.answer", "Event": "rag.answer", "Settings": "rag.settings", "Turn": "rag.conversation"}
__all__ = ["Answer", "AnswerConfig", "ChunkConfig", "Delta", "Event", "Hit", "Index", "IndexCorrupt", "IndexInfo",
           "IndexLocked", "IndexMismatch", "IndexNotFound", "IngestReport", "Pipeline", "Settings", "StoreError",
           "Turn"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
