"""Incremental ingestion: scan -> load -> chunk -> embed -> publish a new snapshot.

Only new or changed files (by content hash; size and mtime let unchanged files skip
hashing) are parsed and embedded. Files that fail are reported and, if an earlier
version was indexed, that version is kept. Parsing runs in a producer thread so it
overlaps with embedding, which holds the cores.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag import lexical, threads, vectors
from rag.embed import Embedder
from rag.ingest.chunker import Chunk, ChunkConfig, Chunker
from rag.ingest.loaders import LoadError
from rag.ingest.sandbox import ParseLimits, Parser
from rag.ingest.scan import DEFAULT_MAX_FILE_BYTES, Candidate, ScanResult, scan
from rag.store import FileRecord, IndexMeta, IndexNotFound, Snapshot, Staging, collect_garbage, write_lock, writing

ENGINES = ("local", "ray")
EMBED_GROUP = 512  # chunks embedded together: bigger groups sort better by length


@dataclass(frozen=True)
class IngestOptions:
    rebuild: bool = False  # ignore the existing index and build from scratch (it stays live until done)
    wait: bool = False  # wait for another writer instead of failing
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    progress: bool | None = None  # None: show progress bars when stderr is a terminal
    index_type: str | None = None  # auto, flat, ivf or ivfpq; None keeps what the index records
    on_progress: Callable[[int, int], None] | None = None  # (files read, files to read), e.g. for a web UI
    parse_limits: ParseLimits = field(default_factory=ParseLimits)  # per-file time and memory for parsing
    engine: str = "local"  # local, or ray: parse and embed on a Ray cluster (rag.ingest.distributed)
    address: str | None = None  # the Ray cluster (None: start a local one for the run)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {path, error}
    chunks_total: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    snapshot: str | None = None  # the snapshot published, None when nothing changed

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Parsed:
    candidate: Candidate
    sha256: str
    kind: str = ""
    text: str = ""
    pages: list[tuple[int, int, int]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)  # each chunk's BM25 terms, space-joined
    error: str | None = None


def ingest(index_dir: Path, paths: list[Path], embedder: Embedder, chunking: ChunkConfig,
           options: IngestOptions = IngestOptions()) -> IngestReport:
    started = time.perf_counter()
    with writing(index_dir), write_lock(index_dir, wait=options.wait):
        collect_garbage(index_dir)
        base = None if options.rebuild else _open_existing(index_dir)
        try:
            report = _ingest_locked(index_dir, base, paths, embedder, chunking, options)
        finally:
            if base is not None:
                base.close()
        collect_garbage(index_dir)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _open_existing(index_dir: Path) -> Snapshot | None:
    try:
        return Snapshot.open(index_dir)
    except IndexNotFound:
        return None


def _ingest_locked(index_dir: Path, base: Snapshot | None, paths: list[Path], embedder: Embedder,
                   chunking: ChunkConfig, options: IngestOptions) -> IngestReport:
    if base is not None:
        base.meta.check_compatible(embedder.name, chunking.chunk_tokens, chunking.overlap_tokens, index_dir)
    policy = options.index_type or (base.meta.index_policy if base is not None else "auto")
    vectors.wanted_kind(policy, 0)  # an unknown policy fails before any work
    if options.engine not in ENGINES:
        raise ValueError(f"unknown ingest engine {options.engine!r}; choose one of {', '.join(ENGINES)}")
    manifest = base.manifest() if base is not None else {}
    earlier = base.failures() if base is not None else {}
    plan = _plan(scan(paths, options.max_file_bytes), manifest, earlier)
    report = IngestReport(removed=plan.removed, unchanged=plan.unchanged)
    failures = plan.failures
    if (base is not None and not plan.to_read and not plan.removed and failures == earlier
            and policy == base.meta.index_policy):
        report.chunks_total = base.chunk_count()
        report.failed = _failed_list(failures)
        return report  # nothing changed: publish nothing

    dim = base.meta.dim if base is not None else embedder.dim
    meta = IndexMeta(embedder.name, dim, embedder.max_tokens, chunking.chunk_tokens, chunking.overlap_tokens,
                     index_policy=policy)
    staging = Staging(index_dir, meta, base)
    try:
        for path in report.removed:
            staging.remove_file(path)
        if options.engine == "ray":
            from rag.ingest import distributed

            distributed.load_and_embed(plan.to_read, manifest, embedder, chunking, staging, report, failures, options)
        else:
            chunker = Chunker(embedder.tokenizer, embedder.max_tokens, chunking)
            _load_and_embed(plan.to_read, manifest, chunker, embedder, staging, report, failures, options)
        staging.set_failures(failures)
        report.chunks_total = int(staging.vectors.ntotal)
        report.snapshot = staging.publish().name
    except BaseException:
        staging.abort()
        raise
    report.failed = _failed_list(failures)
    return report


@dataclass
class _Plan:
    to_read: list[Candidate]  # new, or size/mtime differ from the manifest
    removed: list[str]  # indexed, under a scanned root, and gone
    unchanged: int
    failures: dict[str, str]  # this scan's, plus earlier ones outside the scanned roots


def _plan(found: ScanResult, manifest: dict[str, FileRecord], earlier: dict[str, str]) -> _Plan:
    failures = {str(p): reason for p, reason in found.failed.items()}
    to_read = [c for c in found.files if (old := manifest.get(str(c.path))) is None
               or (old.size, old.mtime_ns) != (c.size, c.mtime_ns)]
    present = {str(c.path) for c in found.files} | set(failures)
    removed = [p for p in manifest if p not in present and _under(p, found)]
    failures |= {p: e for p, e in earlier.items() if not _under(p, found)}  # other roots keep theirs
    return _Plan(to_read, removed, len(found.files) - len(to_read), failures)


def _failed_list(failures: dict[str, str]) -> list[dict[str, str]]:
    return [{"path": p, "error": e} for p, e in sorted(failures.items())]


def _under(path: str, found: ScanResult) -> bool:
    """Whether `path` lies under a root of this scan, i.e. its absence means it was deleted."""
    p = Path(path)
    return any(p == root or p.is_relative_to(root) for root in found.roots)


def _load_and_embed(to_read: list[Candidate], manifest: dict[str, FileRecord], chunker: Chunker,
                    embedder: Embedder, staging: Staging, report: IngestReport, failures: dict[str, str],
                    options: IngestOptions) -> None:
    disable = None if options.progress is None else not options.progress
    threads.use(threads.available())
    with tqdm(total=len(to_read), desc="parse", unit="file", disable=disable) as parse_bar, \
         tqdm(total=0, desc="embed", unit="chunk", disable=disable) as embed_bar:
        pending: list[Parsed] = []

        def flush() -> None:
            texts = [c.embedded for p in pending for c in p.chunks]
            embeddings = embedder.embed(texts, progress=embed_bar.update)
            row = 0
            for parsed in pending:
                n = len(parsed.chunks)
                stage_file(staging, parsed, embeddings[row : row + n], manifest, report)
                row += n
            report.chunks_embedded += len(texts)
            pending.clear()

        for read, parsed in enumerate(_parse_in_background(to_read, chunker, options.parse_limits), 1):
            parse_bar.update(1)
            if options.on_progress:
                options.on_progress(read, len(to_read))
            if needs_embedding(parsed, manifest, staging, report, failures):
                pending.append(parsed)
                embed_bar.total += len(parsed.chunks)
                embed_bar.refresh()
                if sum(len(p.chunks) for p in pending) >= EMBED_GROUP:
                    flush()
        if pending:
            flush()


def needs_embedding(parsed: Parsed, manifest: dict[str, FileRecord], staging: Staging, report: IngestReport,
                    failures: dict[str, str]) -> bool:
    """True when the file's chunks are to be embedded and staged; a file that failed, or whose
    content is what the index holds (touched, not changed), is recorded here instead."""
    old = manifest.get(str(parsed.candidate.path))
    if parsed.error is not None:
        failures[str(parsed.candidate.path)] = parsed.error
    elif old is not None and old.sha256 == parsed.sha256:
        staging.touch_file(old.path, parsed.candidate.mtime_ns)
        report.unchanged += 1
    else:
        return True
    return False


def stage_file(staging: Staging, parsed: Parsed, embeddings: np.ndarray, manifest: dict[str, FileRecord],
               report: IngestReport) -> None:
    """Put a parsed file's chunks and their vectors into the staging snapshot, and report it."""
    cand = parsed.candidate
    path = str(cand.path)
    record = FileRecord(path, parsed.kind, parsed.sha256, cand.size, cand.mtime_ns, len(parsed.chunks), time.time())
    rows = [(c.ordinal, c.start, c.end, c.page, c.heading, c.n_tokens, c.text, terms)
            for c, terms in zip(parsed.chunks, parsed.terms, strict=True)]
    staging.add_file(record, parsed.text, parsed.pages, rows, embeddings)
    (report.updated if path in manifest else report.added).append(path)


def parse_one(cand: Candidate, chunker: Chunker, parser: Parser) -> Parsed:
    try:
        data = cand.path.read_bytes()
    except OSError as exc:
        return Parsed(cand, "", error=f"cannot read file: {exc.strerror or exc}")
    parsed = Parsed(cand, hashlib.sha256(data).hexdigest())
    try:
        doc = parser.load(cand.path.suffix, data)
        parsed.chunks = chunker.split(doc)
        parsed.terms = [" ".join(t) for t in lexical.terms([c.embedded for c in parsed.chunks])]
    except LoadError as exc:
        parsed.error = str(exc)
    except Exception as exc:  # a parser bug on one file must not stop the others
        parsed.error = f"unexpected {type(exc).__name__} while parsing: {exc}"
    else:
        parsed.kind, parsed.text = doc.kind, doc.text
        parsed.pages = [(p.number, p.start, p.end) for p in doc.pages if p.number is not None]
    return parsed


def _parse_in_background(cands: list[Candidate], chunker: Chunker, limits: ParseLimits) -> Iterator[Parsed]:
    """Yield parsed files in order while a thread parses ahead (bounded, so memory stays flat);
    the parsing itself runs in a worker process with `limits`."""
    out: queue.Queue[Parsed | BaseException | None] = queue.Queue(maxsize=32)
    stop = threading.Event()

    def produce() -> None:
        try:
            with Parser(limits) as parser:
                for cand in cands:
                    item = parse_one(cand, chunker, parser)
                    while not stop.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            out.put(None)
        except BaseException as exc:  # hand any failure to the consumer rather than dying silently
            out.put(exc)

    worker = threading.Thread(target=produce, name="rag-parse", daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
