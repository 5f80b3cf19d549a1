"""The on-disk index as immutable snapshots: publishing, the writer's lock, garbage collection and
integrity. Each snapshot holds FAISS vectors (rag.vectors), a SQLite catalog of files and chunks
(rag.catalog) and a BM25 index (rag.lexical).

Layout of an index folder:

    CURRENT            name of the published snapshot, replaced atomically
    snap-000007/       one published snapshot: meta.json, chunks.sqlite, vectors.faiss, bm25/
    .staging-*/        a snapshot being built (deleted if its writer died)
    .scratch-*/        a writer's temporary work, such as Ray's shards (deleted if its writer died)
    .lock              held (flock) by the one writer at a time

A writer copies the current snapshot into a staging folder, changes the copy,
fsyncs it, renames it to the next snapshot name and then swaps CURRENT. Readers
only ever open published snapshots, so they never see a half-written index, and
a writer that dies at any point leaves the previous snapshot published.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rag import lexical, vectors
from rag.catalog import Catalog, ChunkRecord, FileRecord
from rag.errors import IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound, IndexWriteError, StoreError
from rag.fsutil import atomic_write_text, fsync_path, sha256_file

# Re-exported: the store's public names (rag/__init__.py) include the records and errors.
__all__ = ["CURRENT", "FORMAT_VERSION", "SCRATCH", "ChunkRecord", "FileRecord", "IndexCorrupt", "IndexLocked",
           "IndexMeta", "IndexMismatch", "IndexNotFound", "IndexWriteError", "Snapshot", "Staging", "StoreError",
           "collect_garbage", "current_snapshot", "write_lock", "writing"]

FORMAT_VERSION = 3
CURRENT = "CURRENT"
SQLITE = "chunks.sqlite"
VECTORS = "vectors.faiss"
META = "meta.json"
KEEP_SNAPSHOTS = 2  # the published one and its predecessor, for readers still opening it
SCRATCH = ".scratch-"  # prefix of a writer's temporary folder in the index folder (removed if its writer died)

@contextlib.contextmanager
def writing(index_dir: Path) -> Iterator[None]:
    """Turn a failed write under `index_dir` into an IndexWriteError that says what failed and
    that the published index is untouched (writers only ever write beside it)."""
    try:
        yield
    except StoreError:
        raise
    except (OSError, sqlite3.OperationalError, RuntimeError) as exc:
        if isinstance(exc, OSError):
            where = exc.filename2 or exc.filename
            reason = f"{exc.strerror or exc}" + (f" ({where})" if where else "")
        elif isinstance(exc, sqlite3.OperationalError) or "write" in str(exc).lower():  # FAISS: RuntimeError
            reason = str(exc).strip().splitlines()[-1]
        else:
            raise
        raise IndexWriteError(f"cannot write index {index_dir}: {reason}; nothing was changed, the previous "
                              "index is still the one in use") from exc


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built with; a reader checks it before trusting the vectors."""

    embedder: str
    dim: int
    max_tokens: int
    chunk_tokens: int
    overlap_tokens: int
    index_type: str = vectors.FLAT  # what the vectors are stored in now
    index_policy: str = "auto"  # what the user asked for: auto, flat, ivf or ivfpq
    ivf_trained_on: int = 0  # vectors an IVF or IVF-PQ was trained on (retrained after RETRAIN_GROWTH times more)
    nprobe: int = vectors.DEFAULT_NPROBE
    embedder_backend: str = "torch"  # rag.embed.BACKENDS; indexes from before the choice existed used torch
    format_version: int = FORMAT_VERSION

    def check_compatible(self, embedder: str, backend: str, chunk_tokens: int, overlap_tokens: int,
                         index_dir: Path) -> None:
        """Raise IndexMismatch when the caller's embedder, its backend or the chunking differs from this index's."""
        fix = f"rebuild it with `rag ingest PATH... --index {index_dir} --rebuild`"
        if embedder != self.embedder:
            raise IndexMismatch(
                f"index {index_dir} was built with embedder {self.embedder!r} (dim {self.dim}), "
                f"not {embedder!r}; {fix}"
            )
        if backend != self.embedder_backend:
            raise IndexMismatch(
                f"index {index_dir} was built with the {self.embedder_backend!r} embedder backend, not {backend!r} "
                f"(their vectors differ slightly); use --embedder-backend {self.embedder_backend} or {fix}"
            )
        if (chunk_tokens, overlap_tokens) != (self.chunk_tokens, self.overlap_tokens):
            raise IndexMismatch(
                f"index {index_dir} was chunked with {self.chunk_tokens} tokens / {self.overlap_tokens} overlap, "
                f"not {chunk_tokens} / {overlap_tokens}; {fix}"
            )


def current_snapshot(index_dir: Path) -> Path | None:
    """The published snapshot folder, or None when nothing was ever published."""
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return index_dir / name


def _read_meta(snapshot_dir: Path) -> dict[str, Any]:
    meta_file = snapshot_dir / META
    try:
        raw: dict[str, Any] = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"cannot read {meta_file}: {exc}; rebuild with `rag ingest --rebuild`") from exc
    if raw.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"{meta_file} has format version {raw.get('format_version')}, this program reads "
            f"{FORMAT_VERSION}; rebuild with `rag ingest --rebuild`"
        )
    return raw


def published(index_dir: Path) -> Path:
    """The published snapshot folder, or IndexNotFound saying how to build one."""
    snap = current_snapshot(index_dir)
    if snap is None:
        raise IndexNotFound(f"no index at {index_dir}; build one with `rag ingest PATH... --index {index_dir}`")
    return snap


def published_meta(index_dir: Path) -> IndexMeta:
    """What the published snapshot was built with, read without opening its vectors or catalog."""
    return IndexMeta(**_read_meta(published(index_dir))["index"])


class Snapshot:
    """A read-only published snapshot. Cheap to keep open; never changes underneath."""

    def __init__(self, path: Path, verify: bool = True) -> None:
        self.path = path
        raw = _read_meta(path)
        self.meta = IndexMeta(**raw["index"])
        self.checksums: dict[str, str] = raw["checksums"]
        self.created_at: float = raw["created_at"]
        if verify:
            self._verify()
        self.vectors = vectors.opened(self.meta.index_type, faiss.read_index(str(path / VECTORS)))
        vectors.set_nprobe(self.vectors.index, self.meta.nprobe)
        self.catalog = Catalog.read_only(path / SQLITE)
        self.db = self.catalog.db  # for tests and tools that read the tables directly

    @cached_property
    def lexical(self) -> lexical.LexicalIndex:
        """The BM25 index, loaded on first use: ingests and dense searches never need it."""
        return lexical.LexicalIndex(self.path / lexical.FOLDER)

    @classmethod
    def open(cls, index_dir: Path, verify: bool = True) -> Snapshot:
        """Open the published snapshot; retries if a writer swaps it while we open."""
        for _ in range(5):
            snap = published(index_dir)
            if snap.is_dir():
                try:
                    return cls(snap, verify)
                except IndexCorrupt:
                    if current_snapshot(index_dir) == snap:
                        raise
            time.sleep(0.05)  # a writer published meanwhile and removed the one we read of
        raise IndexCorrupt(f"{index_dir / CURRENT} names a snapshot that does not exist")

    def _verify(self) -> None:
        for name, expected in self.checksums.items():
            file = self.path / name
            if not file.is_file():
                raise IndexCorrupt(f"{file} is missing; rebuild with `rag ingest --rebuild`")
            if sha256_file(file) != expected:
                raise IndexCorrupt(f"{file} does not match its checksum (truncated or changed); "
                                   "rebuild with `rag ingest --rebuild`")

    def close(self) -> None:
        self.catalog.close()

    def manifest(self) -> dict[str, FileRecord]:
        return self.catalog.manifest()

    def failures(self) -> dict[str, str]:
        return self.catalog.failures()

    def chunk_count(self) -> int:
        return self.vectors.ntotal

    def chunks(self, ids: Sequence[int]) -> list[ChunkRecord]:
        """Chunk records in the order of `ids` (ids not in the index are skipped)."""
        return self.catalog.chunks(ids)

    def document_text(self, path: str) -> str:
        return self.catalog.document_text(path)

    def page_span(self, path: str, page: int) -> tuple[int, int] | None:
        """Character offsets of a PDF page in the file's text (None: no such page)."""
        return self.catalog.page_span(path, page)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """(chunk id, inner product) of the k nearest chunks for each query row."""
        if self.vectors.ntotal == 0:
            return [[] for _ in range(len(queries))]
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self.vectors.search(queries, k, self.catalog.exact)
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
                for row_ids, row_scores in zip(ids, scores, strict=True)]

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())


@contextlib.contextmanager
def write_lock(index_dir: Path, wait: bool = False) -> Iterator[None]:
    """One writer per index. The kernel drops an flock when its process dies, so a
    killed writer never leaves a stale lock behind; the pid inside is for the message."""
    index_dir.mkdir(parents=True, exist_ok=True)
    lock_path = index_dir / ".lock"
    with lock_path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise IndexLocked(
                f"index {index_dir} is being written by {holder}; wait for it to finish or pass --wait"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.truncate(0)
            fcntl.flock(fh, fcntl.LOCK_UN)


class Staging:
    """A new snapshot under construction. Only used while holding `write_lock`."""

    def __init__(self, index_dir: Path, meta: IndexMeta, base: Snapshot | None) -> None:
        self.index_dir = index_dir
        self.meta = meta
        self.path = index_dir / f".staging-{os.getpid()}-{time.time_ns()}"
        self.path.mkdir()
        try:
            self._start(base)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def _start(self, base: Snapshot | None) -> None:
        self.vectors: vectors.VectorIndex
        if base is None:
            self.catalog = Catalog.writable(self.path / SQLITE, new=True)
            self.vectors = vectors.FlatVectors(vectors.new_flat(self.meta.dim))
        else:
            shutil.copyfile(base.path / SQLITE, self.path / SQLITE)
            self.catalog = Catalog.writable(self.path / SQLITE, new=False)
            self.vectors = vectors.opened(base.meta.index_type, faiss.read_index(str(base.path / VECTORS)))
            self.meta = replace(self.meta, index_type=base.meta.index_type,
                                ivf_trained_on=base.meta.ivf_trained_on, nprobe=base.meta.nprobe)

    def remove_file(self, path: str) -> int:
        """Drop a file and all its chunks; returns how many chunks went."""
        ids = self.catalog.chunk_ids(path)
        if ids:
            self.vectors.remove(np.asarray(ids, dtype=np.int64), self.catalog.exact)
        self.catalog.remove_file(path)
        return len(ids)

    def add_file(self, record: FileRecord, text: str, pages: Iterable[tuple[int, int, int]],
                 chunks: Sequence[tuple[int, int, int, int | None, str, int, str, str]],
                 embeddings: np.ndarray) -> None:
        """Add a file with its chunks `(ordinal, start, end, page, heading, n_tokens, text, terms)`
        and their vectors, replacing any earlier version of the file. `terms` are the chunk's
        BM25 terms joined by spaces."""
        if len(chunks) != len(embeddings):
            raise ValueError(f"{record.path}: {len(chunks)} chunks but {len(embeddings)} vectors")
        self.remove_file(record.path)
        ids = self.catalog.add_file(record, text, pages, chunks)
        if len(ids):
            self.vectors.add(ids, np.ascontiguousarray(embeddings, dtype=np.float32), self.catalog.exact)
            if vectors.switch_now(self.meta.index_policy, self.vectors):
                self._fit_vectors()  # from here on vectors go to disk, not into an index in memory

    def touch_file(self, path: str, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content did not change."""
        self.catalog.touch_file(path, mtime_ns)

    def set_failures(self, failures: dict[str, str]) -> None:
        self.catalog.set_failures(failures)

    def publish(self) -> Path:
        """Make this the current snapshot, atomically, and return its folder."""
        self._check_consistent()
        self._fit_vectors()
        bm25_files = lexical.build(self.path / lexical.FOLDER, *self.catalog.all_terms())
        self.catalog.commit()
        self.catalog.close()
        faiss.write_index(self.vectors.index, str(self.path / VECTORS))
        checksums = {name: sha256_file(self.path / name) for name in (SQLITE, VECTORS, *bm25_files)}
        meta = {"format_version": FORMAT_VERSION, "index": asdict(self.meta), "checksums": checksums,
                "created_at": time.time()}
        (self.path / META).write_text(json.dumps(meta, indent=1))
        for name in (*checksums, META):
            fsync_path(self.path / name)
        fsync_path(self.path / lexical.FOLDER)
        fsync_path(self.path)
        final = self.index_dir / _next_snapshot_name(self.index_dir)
        os.rename(self.path, final)
        atomic_write_text(self.index_dir / CURRENT, final.name + "\n")
        return final

    def _fit_vectors(self) -> None:
        """Move the vectors into the index kind the policy wants at this size (or retrain it)."""
        n = self.vectors.ntotal
        kind = vectors.wanted_kind(self.meta.index_policy, n)
        if not vectors.needs_rebuild(self.meta.index_type, kind, n, self.meta.ivf_trained_on):
            return
        self.vectors = vectors.rebuild(self.vectors, kind, self.meta.dim, self.catalog.exact)
        self.meta = replace(self.meta, index_type=kind, ivf_trained_on=n if kind in vectors.TRAINED else 0,
                            nprobe=vectors.default_nprobe(self.vectors.index))

    def abort(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.catalog.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def _check_consistent(self) -> None:
        n_rows, n_exact = self.catalog.counts()
        if n_rows != self.vectors.ntotal:
            raise IndexCorrupt(f"staging index has {n_rows} chunk rows but {self.vectors.ntotal} vectors")
        if n_exact != (n_rows if self.vectors.keeps_exact else 0):
            raise IndexCorrupt(f"staging index has {n_rows} chunk rows but {n_exact} exact vectors")


def _snapshot_number(path: Path) -> int:
    return int(path.name.removeprefix("snap-"))


def _snapshots(index_dir: Path) -> list[Path]:
    return sorted((p for p in index_dir.glob("snap-*") if p.name[5:].isdigit()), key=_snapshot_number)


def _next_snapshot_name(index_dir: Path) -> str:
    existing = _snapshots(index_dir)
    return f"snap-{(_snapshot_number(existing[-1]) + 1 if existing else 1):06d}"


def collect_garbage(index_dir: Path) -> None:
    """Remove staging (and Ray shard) folders of dead writers, and snapshots older than the last KEEP_SNAPSHOTS
    or newer than CURRENT (published by a writer that died before swapping CURRENT)."""
    for stale in (*index_dir.glob(".staging-*"), *index_dir.glob(".shards-*")):
        shutil.rmtree(stale, ignore_errors=True)
    current = current_snapshot(index_dir)
    snaps = _snapshots(index_dir)
    if current is None:
        keep: set[Path] = set()
    else:
        older = [s for s in snaps if _snapshot_number(s) <= _snapshot_number(current)]
        keep = set(older[-KEEP_SNAPSHOTS:])
    for snap in snaps:
        if snap not in keep:
            shutil.rmtree(snap, ignore_errors=True)
