"""The public face of an index: ingest files, search them, describe the index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.embed import Embedder, make_embedder
from rag.ingest.chunker import ChunkConfig
from rag.ingest.pipeline import ingest
from rag.ingest.sandbox import ParseLimits
from rag.ingest.work import IngestOptions, IngestReport
from rag.rerank import DEFAULT_RERANKER, DEFAULT_TOP_N, CrossEncoderReranker, Reranker, RerankingRetriever
from rag.retrieve import MODES, BM25Retriever, DenseRetriever, FusionConfig, Hit, HybridRetriever, Retriever
from rag.store import IndexMeta, IndexNotFound, Snapshot, current_snapshot

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_INDEX = Path("indexes/default")


@dataclass(frozen=True)
class IndexInfo:
    path: str
    snapshot: str
    files: int
    chunks: int
    embedder: str
    embedder_backend: str
    dim: int
    index_type: str
    chunk_tokens: int
    overlap_tokens: int
    size_bytes: int
    created_at: float
    failed: list[dict[str, str]]


class Index:
    """An index folder. Reads always see the latest published snapshot.

    `embedder` (a model name or an Embedder), `embedder_backend` (rag.embed.BACKENDS) and
    `chunking` default to what the index was built with, or to the project defaults for a new
    index; `fusion` sets how hybrid search fuses rankings; `reranker` (a model name or a
    Reranker) rescores the best `rerank_top_n` hits of a search that asks for reranking.
    """

    def __init__(self, path: str | Path = DEFAULT_INDEX, embedder: str | Embedder | None = None,
                 embedder_backend: str | None = None, chunking: ChunkConfig | None = None,
                 fusion: FusionConfig | None = None,
                 reranker: str | Reranker = DEFAULT_RERANKER, rerank_top_n: int = DEFAULT_TOP_N) -> None:
        self.path = Path(path)
        self.fusion = fusion or FusionConfig()
        self.rerank_top_n = rerank_top_n
        self._reranker_arg = reranker
        self._reranker: Reranker | None = None
        self._embedder_arg = embedder
        self._backend_arg = embedder_backend
        self._chunking = chunking
        self._embedder: Embedder | None = None
        self._snapshot: Snapshot | None = None

    # -- writing ------------------------------------------------------------------------------

    def ingest(self, paths: list[str | Path], *, rebuild: bool = False, wait: bool = False,
               max_file_bytes: int | None = None, progress: bool | None = None,
               index_type: str | None = None, on_progress: Callable[[int, int], None] | None = None,
               parse_limits: ParseLimits | None = None, engine: str = "local",
               address: str | None = None) -> IngestReport:
        """Bring the index in line with the files under `paths` (new, changed and deleted files).
        `index_type` (auto, flat, ivf, ivfpq) is recorded; None keeps the index's own. `on_progress` is
        told (files read, files to read) as reading goes on. `parse_limits`: each file's parsing
        time and memory (a file past them fails alone). `engine` "ray" parses and embeds on a Ray
        cluster at `address` (None: a local one), same result as "local"."""
        built = None if rebuild else self._published_meta()
        chunking = self._chunking or (ChunkConfig(built.chunk_tokens, built.overlap_tokens) if built else ChunkConfig())
        options = IngestOptions(rebuild=rebuild, wait=wait, progress=progress, index_type=index_type,
                                on_progress=on_progress, parse_limits=parse_limits or ParseLimits(),
                                engine=engine, address=address,
                                **({"max_file_bytes": max_file_bytes} if max_file_bytes else {}))
        embedder = self._get_embedder(built or None)
        return ingest(self.path, [Path(p) for p in paths], embedder, chunking, options)

    # -- reading ------------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, mode: str = "hybrid", rerank: bool = False) -> list[Hit]:
        """The k best chunks for `query` by `mode` (dense, bm25 or hybrid), reranked if asked. Thread
        counts are the caller's choice (rag.threads; one is fastest for a single query on small
        machines, benchmarks/search.py), never changed here."""
        return self.retriever(mode, rerank).search(query, k)

    def live(self, mode: str = "hybrid", rerank: bool = False) -> IndexRetriever:
        """A retriever that searches the latest published snapshot on every call (for a pipeline
        built once and asked after later ingests)."""
        return IndexRetriever(self, mode, rerank)

    def retriever(self, mode: str = "hybrid", rerank: bool = False) -> Retriever:
        """A retriever over the current snapshot; BM25 alone never loads the embedding model."""
        first = self._first_stage(mode)
        return RerankingRetriever(first, self._get_reranker(), self.rerank_top_n) if rerank else first

    def _first_stage(self, mode: str) -> Retriever:
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        snapshot = self.snapshot()
        if mode == "bm25":
            return BM25Retriever(snapshot)
        embedder = self._get_embedder(snapshot.meta)
        meta = snapshot.meta
        meta.check_compatible(embedder.name, embedder.backend, meta.chunk_tokens, meta.overlap_tokens, self.path)
        dense = DenseRetriever(snapshot, embedder)
        return dense if mode == "dense" else HybridRetriever(dense, BM25Retriever(snapshot), self.fusion)

    def info(self) -> IndexInfo:
        snap = self.snapshot()
        meta = snap.meta
        return IndexInfo(str(self.path), snap.path.name, len(snap.manifest()), snap.chunk_count(), meta.embedder,
                         meta.embedder_backend, meta.dim, meta.index_type, meta.chunk_tokens, meta.overlap_tokens,
                         snap.size_bytes(), snap.created_at,
                         [{"path": p, "error": e} for p, e in snap.failures().items()])

    def snapshot(self) -> Snapshot:
        """The published snapshot, reopened when a writer has published a newer one."""
        if self._snapshot is None or current_snapshot(self.path) != self._snapshot.path:
            if self._snapshot is not None:
                self._snapshot.close()
            self._snapshot = Snapshot.open(self.path)
        return self._snapshot

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    def _published_meta(self) -> IndexMeta | None:
        try:
            return self.snapshot().meta
        except IndexNotFound:
            return None

    def _get_reranker(self) -> Reranker:
        if self._reranker is None:
            arg = self._reranker_arg
            self._reranker = CrossEncoderReranker(arg) if isinstance(arg, str) else arg
        return self._reranker

    def _get_embedder(self, built: IndexMeta | None) -> Embedder:
        """The embedder given to the constructor, else the one the index records (`built`), else
        the project's default."""
        if self._embedder is None:
            arg = self._embedder_arg
            if arg is None or isinstance(arg, str):
                name = arg or (built.embedder if built else DEFAULT_EMBEDDER)
                backend = self._backend_arg or (built.embedder_backend if built else None)  # None: the default
                self._embedder = make_embedder(name, backend)
            else:
                self._embedder = arg
        return self._embedder


@dataclass(frozen=True)
class IndexRetriever:
    """`Index.live`: the Retriever protocol over an index's latest snapshot."""

    index: Index
    mode: str = "hybrid"
    rerank: bool = False

    def search(self, query: str, k: int = 5) -> list[Hit]:
        return self.index.search(query, k, self.mode, self.rerank)

    @property
    def embedder(self) -> str:
        """The name of the embedder the index was built with (its dense scores' scale)."""
        return self.index.snapshot().meta.embedder
