"""What the web UI needs from the pipeline, behind one protocol, and the real implementation.

The pages only talk to a `Service`, so tests can hand them a fake one (no models) and the
real one can be swapped (`$RAG_UI_SERVICE=module:factory`). `LocalService` holds the index,
the generator and the verifier, loaded once per process and shared by every browser session
(Streamlit's `cache_resource`); one lock serialises work on them, as two CPU-bound answers at
once would each take twice as long anyway.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from rag import uploads, verify
from rag.answer import READER as READER  # re-exported for the web pages
from rag.answer import AnswerConfig, Event
from rag.conversation import DEFAULT_CONDENSER, Turn
from rag.decision import REASONS as REASONS  # re-exported for the web pages
from rag.generate import backends
from rag.generate.weights import DEFAULT_GENERATOR
from rag.index import DEFAULT_INDEX, Index
from rag.ingest.work import IngestReport
from rag.pipeline import Pipeline
from rag.reader import Reader
from rag.retrieve import MODES as MODES  # used here and by the web pages
from rag.settings import Settings

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class AskOptions:
    """Per-question choices from the sidebar (kept per browser session, never shared)."""

    mode: str = "hybrid"
    k: int = AnswerConfig.k
    strict: bool = False
    server: str = ""  # empty: the generator in process; else an OpenAI-compatible base URL
    generator: str = DEFAULT_GENERATOR

    @classmethod
    def from_settings(cls, settings: Settings) -> AskOptions:
        """The sidebar's starting values: $RAG_GENERATOR, $RAG_SERVER and $RAG_STRICT, as `rag ask` takes them."""
        return cls(strict=settings.strict, server=settings.server or "",
                   generator=settings.generator or DEFAULT_GENERATOR)


@dataclass(frozen=True)
class FileRow:
    path: str  # relative to the corpus folder
    status: str  # "indexed", "failed", or "not indexed" (on disk, waiting for a rebuild)
    chunks: int
    indexed_at: float | None
    error: str = ""


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, Any]
    report_dir: Path | None = None
    problems: list[str] = field(default_factory=list)


class Service(Protocol):
    corpus: Path

    def ask(self, question: str, settings: AskOptions, history: Sequence[Turn] = ()) -> Iterator[Event]:
        """The answer to `question`, a follow-up to the conversation `history` (earliest turn first)."""
        ...

    def files(self) -> list[FileRow]: ...

    def upload(self, name: str, data: bytes) -> Path: ...

    def remove(self, relative: str) -> None: ...

    def rebuild(self, progress: Progress) -> IngestReport: ...

    def context(self, source: str, start: int, end: int, page: int | None) -> tuple[str, int, int]:
        """The text around [start, end) of `source` (the page, for a PDF), with the span's offsets in it."""
        ...

    def evaluate(self, dataset: Path, progress: Progress) -> EvalResult: ...

    def evaluate_retrieval(self, dataset: Path, progress: Progress) -> EvalResult: ...


class LocalService:
    """The real pipeline over one index and one corpus folder."""

    def __init__(self, index: str | Path = DEFAULT_INDEX, corpus: str | Path = "corpus",
                 reports: str | Path = "reports/ui", settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.index = Index(index)
        self.corpus = Path(corpus)
        self.reports = Path(reports)
        self.lock = threading.RLock()
        self._generators: dict[backends.GeneratorSpec, backends.Generator] = {}

    @classmethod
    def from_env(cls) -> LocalService:
        settings = Settings.from_env()
        return cls(settings.index or DEFAULT_INDEX, settings.corpus or "corpus", settings=settings)

    @cached_property
    def verifier(self) -> verify.Verifier:
        return verify.load()

    @cached_property
    def reader(self) -> Reader:
        return Reader(self.settings.reader)

    def generator(self, settings: AskOptions) -> backends.Generator:
        spec = backends.GeneratorSpec.of(settings.generator, settings.server, self.settings.api_key,
                                         adapter=self.settings.generator_adapter, backend=self.settings.backend)
        if spec not in self._generators:
            self._generators[spec] = backends.create(spec)
        return self._generators[spec]

    def ask(self, question: str, settings: AskOptions, history: Sequence[Turn] = ()) -> Iterator[Event]:
        with self.lock:
            answers = Pipeline.build(self.index, self.generator(settings), AnswerConfig(k=settings.k), self.reader,
                                     self.verifier, settings.strict, settings.mode,
                                     condenser=self.settings.condenser or DEFAULT_CONDENSER)
            yield from answers.stream(question, history)

    def files(self) -> list[FileRow]:
        with self.lock:  # reading may reopen the snapshot, which must not close under a running answer
            snapshot = self.index.snapshot()
            manifest, failures = snapshot.manifest(), snapshot.failures()
        rows = {}
        for path, record in manifest.items():
            rows[path] = FileRow(self._relative(path), "indexed", record.n_chunks, record.indexed_at)
        for path, error in failures.items():
            rows[path] = FileRow(self._relative(path), "failed", 0, None, error)
        for found in self.corpus.rglob("*"):
            full = str(found.resolve())
            if self._document(found) and full not in rows:
                rows[full] = FileRow(self._relative(full), "not indexed", 0, None)
        return sorted(rows.values(), key=lambda r: r.path)

    def _document(self, path: Path) -> bool:
        """Whether `path` is one of the corpus's documents: a file of an allowed type, not hidden, inside the
        corpus. Only these are listed or removed (never `.git/...`, or other files kept beside them)."""
        corpus = self.corpus.resolve()
        resolved = path.resolve()
        return (resolved.is_relative_to(corpus) and resolved.is_file() and resolved.suffix.lower() in uploads.ALLOWED
                and not any(part.startswith(".") for part in resolved.relative_to(corpus).parts))

    def _relative(self, path: str) -> str:
        try:
            return str(Path(path).relative_to(self.corpus.resolve()))
        except ValueError:
            return path

    def upload(self, name: str, data: bytes) -> Path:
        return uploads.save(self.corpus, name, data)

    def remove(self, relative: str) -> None:
        """Delete a corpus file (the next rebuild drops it from the index)."""
        if "\0" in relative:  # the OS calls below would raise ValueError (a 500 from the server)
            raise uploads.UploadError(f"{relative!r} is not a document of the corpus")
        target = self.corpus / relative
        if not self._document(target):
            raise uploads.UploadError(f"{relative!r} is not a document of the corpus")
        target.resolve().unlink()

    def rebuild(self, progress: Progress) -> IngestReport:
        with self.lock:
            return self.index.ingest([self.corpus], progress=False, on_progress=progress)

    def context(self, source: str, start: int, end: int, page: int | None,
                around: int = 1500) -> tuple[str, int, int]:
        with self.lock:
            snapshot = self.index.snapshot()
            text = snapshot.document_text(source)
            span = snapshot.page_span(source, page) if page else None
        lo, hi = span or (max(0, start - around), min(len(text), end + around))
        return text[lo:hi], start - lo, end - lo

    def evaluate(self, dataset: Path, progress: Progress) -> EvalResult:
        """`rag eval answers` on a JSON-lines question file over this index (report under reports/ui/)."""
        from rag.evaluation import answers as ea

        problems: list[str] = []
        questions = ea.load_jsonl(dataset, problems)
        settings = AskOptions()
        out = self.reports / dataset.stem
        ea.prepare(out, {"dataset": str(dataset), "index": str(self.index.path), "generator": settings.generator})
        with self.lock:
            answers = Pipeline.build(self.index, self.generator(settings), AnswerConfig(), self.reader, self.verifier)
            report = ea.evaluate(answers, questions, out, f"Answers: {dataset.name}",
                                 progress=_counter(progress, len(questions)))
        report.write(out)
        return EvalResult(report.results, out, problems)


    def evaluate_retrieval(self, dataset: Path, progress: Progress) -> EvalResult:
        """Per retrieval mode: a gold answer in the top k, MRR, latency (questions with gold answers)."""
        from rag.evaluation import answers as ea

        problems: list[str] = []
        questions = ea.load_jsonl(dataset, problems)
        step = _counter(progress, len(ea.with_gold(questions)) * len(MODES))
        with self.lock:
            results = ea.retrieval(self.index, questions, MODES, AnswerConfig.k, step)
        return EvalResult({f"{mode} {name}": value for mode, r in results.items() for name, value in r.items()},
                          None, problems)


def _counter(progress: Progress, total: int) -> Callable[[int], None]:
    """A callback told "n more done" that reports (done so far, total) to `progress`."""
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    return step


def load(spec: str | None = None) -> Service:
    """The service named by `spec` or $RAG_UI_SERVICE ("module:factory"), else LocalService.from_env()."""
    spec = spec or Settings.from_env().ui_service
    if not spec:
        return LocalService.from_env()
    module, _, name = spec.partition(":")
    factory: Any = getattr(importlib.import_module(module), name)
    service: Service = factory()
    return service
