"""The collections a server holds: each an index, its corpus folder (None: read-only) and the
pipelines built over it, all sharing one generator, reader and verifier loaded once per process.

Each collection has its own Index, so retrieval is restricted to it before anything is scored.
A lock per collection guards its open snapshot (a search and a reopen after a rebuild must not
overlap); a rebuild writes through a second Index object in a background thread, so queries keep
being served from the published snapshot meanwhile and see the new one once it is published.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag import verify
from rag.answer import AnswerConfig
from rag.embed import Embedder, make_embedder
from rag.generate import backends
from rag.generate.backends import Generator, Sampling
from rag.generate.weights import DEFAULT_GENERATOR
from rag.index import Index
from rag.ingest.work import IngestReport
from rag.pipeline import Pipeline
from rag.reader import Reader, SpanReader
from rag.retrieve import Hit, Retriever
from rag.server.config import CollectionSpec, ServeConfig
from rag.server.errors import ApiError
from rag.service import FileRow, LocalService
from rag.settings import Settings
from rag.store import published_meta


@dataclass(frozen=True)
class Models:
    """What answers: shared by every collection and request."""

    generator: Generator | None
    reader: SpanReader | None
    verifier: verify.Verifier | None

    @classmethod
    def load(cls, config: ServeConfig, settings: Settings) -> Models:
        """The shipped generator (or --generator/--server), reader and verifier, as `rag ask` loads them."""
        generator = backends.make(config.generator or settings.generator or DEFAULT_GENERATOR,
                                  config.server or settings.server, settings.api_key,
                                  adapter=settings.generator_adapter, backend=settings.backend)
        return cls(generator, Reader(settings.reader), verify.load())

    def warm(self) -> None:
        """Load every model now (each loads on first use), so that /health says ready only once they are in
        memory and the first caller does not wait for them."""
        if self.generator is not None:
            list(self.generator.stream([{"role": "user", "content": "Hello"}], Sampling(max_new_tokens=1)))
        if self.reader is not None:
            passage = Hit(1, 0, "warm-up", None, 0, 24, 0.0, "", "The warm-up passage text.")
            self.reader.read_hits("What is this?", [passage], top=1)
        if self.verifier is not None:
            self.verifier.scores([("The sky is blue.", "The sky is blue.")])


@dataclass
class RebuildJob:
    id: str
    status: str = "running"  # running, done, failed
    done: int = 0
    total: int = 0
    report: dict[str, object] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, object]:
        return {"job": self.id, "status": self.status, "done": self.done, "total": self.total, "report": self.report}


class Locked:
    """A retriever whose searches hold the collection's lock (its snapshot may be reopened by another search)."""

    def __init__(self, inner: Retriever, lock: threading.RLock) -> None:
        self.inner = inner
        self.lock = lock

    def search(self, query: str, k: int = 5) -> list[Hit]:
        with self.lock:
            return self.inner.search(query, k)


class Collection:
    def __init__(self, spec: CollectionSpec, models: Models, strict: bool = False,
                 open_index: Callable[[Path], Index] = Index) -> None:
        self.spec = spec
        self.name = spec.name
        self.models = models
        self.strict = strict
        self.open_index = open_index  # one Index serves queries, another (made per rebuild) writes
        self.index = open_index(spec.index)
        # The web UI's service, for the corpus listing, uploads and removals it already checks.
        self.files_service = LocalService(spec.index, spec.corpus or spec.index / ".no-corpus")
        self.files_service.index = self.index
        self.lock = self.files_service.lock
        self.jobs = itertools.count(1)
        self.rebuild_job: RebuildJob | None = None
        self.created = int(time.time())

    def open(self) -> None:
        """Open the index and load its embedder now (at startup): a missing or broken index fails before the
        server says it is ready."""
        self.search("warm-up", 1, "hybrid")

    def search(self, query: str, k: int, mode: str) -> list[Hit]:
        with self.lock:
            return self.index.search(query, k, mode)

    def pipeline(self, k: int = AnswerConfig.k, mode: str = "hybrid", strict: bool | None = None,
                 generator: Generator | None = None) -> Pipeline:
        """A pipeline over this collection with the shared models (cheap: nothing is loaded); `generator`, when
        given, stands for the shared one (rag.server.answering wraps it so that a caller who leaves stops it)."""
        with self.lock:
            built = Pipeline.build(self.index, generator or self.models.generator, AnswerConfig(k=k),
                                   self.models.reader, self.models.verifier,
                                   self.strict if strict is None else strict, mode)
        built.answerer.retriever = Locked(built.answerer.retriever, self.lock)
        return built

    def display(self, source: str) -> str:
        """A source path as callers see it: relative to the corpus, else to the working folder, else in full."""
        for base in ([self.spec.corpus.resolve()] if self.spec.corpus else []) + [Path.cwd()]:
            if Path(source).is_relative_to(base):
                return str(Path(source).relative_to(base))
        return source

    # -- documents ----------------------------------------------------------------------------

    def _writable(self) -> Path:
        if self.spec.corpus is None:
            raise ApiError(409, f"collection {self.name!r} is read-only (served without a corpus folder)",
                           code="read_only")
        return self.spec.corpus

    def files(self) -> list[FileRow]:
        return self.files_service.files()

    def upload(self, name: str, data: bytes) -> str:
        self._writable()
        return self.display(str(self.files_service.upload(name, data)))

    def remove(self, relative: str) -> None:
        self._writable()
        self.files_service.remove(relative)

    def start_rebuild(self) -> RebuildJob:
        corpus = self._writable()
        with self.lock:
            if self.rebuild_job is not None and self.rebuild_job.status == "running":
                raise ApiError(409, f"a rebuild of {self.name!r} is already running (job {self.rebuild_job.id})",
                               code="rebuild_running")
            job = self.rebuild_job = RebuildJob(str(next(self.jobs)))
        threading.Thread(target=self._rebuild, args=(job, corpus), name=f"rebuild-{job.id}", daemon=True).start()
        return job

    def _rebuild(self, job: RebuildJob, corpus: Path) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            with self.open_index(self.spec.index) as writer:
                report = writer.ingest([corpus], progress=False, on_progress=progress)
            job.report = self._report(report)
            job.status = "done"
        except Exception as exc:  # a failed rebuild is reported on its job; the served snapshot stays
            job.report = {"error": f"{type(exc).__name__}: {exc}"}
            job.status = "failed"

    def _report(self, report: IngestReport) -> dict[str, object]:
        return {"added": [self.display(p) for p in report.added], "updated": [self.display(p) for p in report.updated],
                "removed": [self.display(p) for p in report.removed], "unchanged": report.unchanged,
                "failed": [{"path": self.display(f["path"]), "error": f["error"]} for f in report.failed],
                "chunks_total": report.chunks_total, "chunks_embedded": report.chunks_embedded,
                "seconds": round(report.seconds, 3), "snapshot": report.snapshot}


class SharedEmbedders:
    """Opens indexes with one embedder per (model, backend) for the whole process: collections built
    with the same model, and each one's rebuilds, share one loaded copy instead of one each (an ONNX
    Runtime session and a torch model in inference both run from several threads at once)."""

    def __init__(self) -> None:
        self.loaded: dict[tuple[str, str], Embedder] = {}
        self.lock = threading.Lock()

    def open(self, path: Path) -> Index:
        meta = published_meta(path)  # what it was built with (checked again on every use)
        key = (meta.embedder, meta.embedder_backend)
        with self.lock:
            if key not in self.loaded:
                self.loaded[key] = make_embedder(*key)
            return Index(path, embedder=self.loaded[key])


class Collections:
    """The served collections by name."""

    def __init__(self, collections: list[Collection]) -> None:
        self.by_name = {c.name: c for c in collections}

    @classmethod
    def load(cls, config: ServeConfig, settings: Settings,
             models: Callable[[], Models] | None = None) -> Collections:
        """Every collection of `config` opened, and the models loaded once for all of them."""
        shared = models() if models else Models.load(config, settings)
        shared.warm()
        embedders = SharedEmbedders()
        loaded = cls([Collection(spec, shared, strict=config.strict or settings.strict, open_index=embedders.open)
                      for spec in config.collections])
        for collection in loaded.by_name.values():
            collection.open()
        return loaded

    def names(self) -> list[str]:
        return sorted(self.by_name)
