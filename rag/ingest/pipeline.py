"""Incremental ingestion: scan -> load -> chunk -> embed -> publish a new snapshot.

Only new or changed files (by content hash; size and mtime let unchanged files skip
hashing) are parsed and embedded. Files that fail are reported and, if an earlier
version was indexed, that version is kept. Parsing runs in a producer thread so it
overlaps with embedding, which holds the cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rag import vectors
from rag.catalog import FileRecord
from rag.embed import Embedder
from rag.ingest import distributed, local
from rag.ingest.chunker import ChunkConfig
from rag.ingest.scan import Candidate, ScanResult, scan
from rag.ingest.work import IngestOptions, IngestReport
from rag.store import IndexMeta, IndexNotFound, Snapshot, Staging, collect_garbage, write_lock, writing

# The engines that parse, embed and stage the files to read, by IngestOptions.engine.
ENGINES = {"local": local.load_and_embed, "ray": distributed.load_and_embed}


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
        base.meta.check_compatible(embedder.name, embedder.backend, chunking.chunk_tokens, chunking.overlap_tokens,
                                   index_dir)
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
                     index_policy=policy, embedder_backend=embedder.backend)
    staging = Staging(index_dir, meta, base)
    try:
        for path in report.removed:
            staging.remove_file(path)
        ENGINES[options.engine](plan.to_read, manifest, embedder, chunking, staging, report, failures, options)
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


