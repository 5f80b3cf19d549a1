"""The on-disk index: immutable snapshots of FAISS vectors plus SQLite chunks and file manifest.

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
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import faiss
import numpy as np

from rag import lexical, vectors
from rag.fsutil import atomic_write_text, fsync_path

FORMAT_VERSION = 3
CURRENT = "CURRENT"
SQLITE = "chunks.sqlite"
VECTORS = "vectors.faiss"
META = "meta.json"
KEEP_SNAPSHOTS = 2  # the published one and its predecessor, for readers still opening it
SCRATCH = ".scratch-"  # prefix of a writer's temporary folder in the index folder (removed if its writer died)

_SCHEMA = """
CREATE TABLE files (path TEXT PRIMARY KEY, kind TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL, n_chunks INTEGER NOT NULL, indexed_at REAL NOT NULL,
                    text TEXT NOT NULL);
CREATE TABLE pages (path TEXT NOT NULL, number INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
                    PRIMARY KEY (path, number));
CREATE TABLE chunks (id INTEGER PRIMARY KEY, path TEXT NOT NULL, ordinal INTEGER NOT NULL,
                     start INTEGER NOT NULL, end INTEGER NOT NULL, page INTEGER, heading TEXT NOT NULL,
                     n_tokens INTEGER NOT NULL, text TEXT NOT NULL, terms TEXT NOT NULL);
CREATE INDEX chunks_by_path ON chunks (path);
CREATE TABLE failures (path TEXT PRIMARY KEY, error TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO state VALUES ('next_chunk_id', 1);
"""
# An IVF-PQ index holds codes, not vectors: the exact ones (float32 bytes) live here, on disk, for
# re-ranking its candidates, retraining it and converting to another index type. Empty otherwise.
_EXACT = "CREATE TABLE IF NOT EXISTS exact (id INTEGER PRIMARY KEY, vector BLOB NOT NULL)"


class StoreError(RuntimeError):
    """Base for index problems a user must act on (the message says how)."""


class IndexNotFound(StoreError):
    pass


class IndexCorrupt(StoreError):
    pass


class IndexMismatch(StoreError):
    pass


class IndexLocked(StoreError):
    pass


class IndexWriteError(StoreError):
    """The index folder could not be written (disk full, read-only, no permission)."""


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
    format_version: int = FORMAT_VERSION

    def check_compatible(self, embedder: str, chunk_tokens: int, overlap_tokens: int, index_dir: Path) -> None:
        """Raise IndexMismatch when the caller's embedder or chunking differs from this index's."""
        fix = f"rebuild it with `rag ingest PATH... --index {index_dir} --rebuild`"
        if embedder != self.embedder:
            raise IndexMismatch(
                f"index {index_dir} was built with embedder {self.embedder!r} (dim {self.dim}), "
                f"not {embedder!r}; {fix}"
            )
        if (chunk_tokens, overlap_tokens) != (self.chunk_tokens, self.overlap_tokens):
            raise IndexMismatch(
                f"index {index_dir} was chunked with {self.chunk_tokens} tokens / {self.overlap_tokens} overlap, "
                f"not {chunk_tokens} / {overlap_tokens}; {fix}"
            )


@dataclass(frozen=True)
class FileRecord:
    path: str
    kind: str
    sha256: str
    size: int
    mtime_ns: int
    n_chunks: int
    indexed_at: float


@dataclass(frozen=True)
class ChunkRecord:
    id: int
    path: str
    ordinal: int
    start: int
    end: int
    page: int | None
    heading: str
    n_tokens: int
    text: str


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_snapshot(index_dir: Path) -> Path | None:
    """The published snapshot folder, or None when nothing was ever published."""
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return index_dir / name


class Snapshot:
    """A read-only published snapshot. Cheap to keep open; never changes underneath."""

    def __init__(self, path: Path, verify: bool = True) -> None:
        self.path = path
        meta_file = path / META
        try:
            raw = json.loads(meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"cannot read {meta_file}: {exc}; rebuild with `rag ingest --rebuild`") from exc
        if raw.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(
                f"{meta_file} has format version {raw.get('format_version')}, this program reads "
                f"{FORMAT_VERSION}; rebuild with `rag ingest --rebuild`"
            )
        self.meta = IndexMeta(**raw["index"])
        self.checksums: dict[str, str] = raw["checksums"]
        self.created_at: float = raw["created_at"]
        if verify:
            self._verify()
        self.vectors = vectors.opened(self.meta.index_type, faiss.read_index(str(path / VECTORS)))
        vectors.set_nprobe(self.vectors.index, self.meta.nprobe)
        self.db = sqlite3.connect(f"file:{path / SQLITE}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self.exact = ExactTable(self.db)

    @cached_property
    def lexical(self) -> lexical.LexicalIndex:
        """The BM25 index, loaded on first use: ingests and dense searches never need it."""
        return lexical.LexicalIndex(self.path / lexical.FOLDER)

    @classmethod
    def open(cls, index_dir: Path, verify: bool = True) -> Snapshot:
        """Open the published snapshot; retries if a writer swaps it while we open."""
        for _ in range(5):
            snap = current_snapshot(index_dir)
            if snap is None:
                raise IndexNotFound(f"no index at {index_dir}; build one with `rag ingest PATH... --index {index_dir}`")
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
            if _sha256_file(file) != expected:
                raise IndexCorrupt(f"{file} does not match its checksum (truncated or changed); "
                                   "rebuild with `rag ingest --rebuild`")

    def close(self) -> None:
        self.db.close()

    def manifest(self) -> dict[str, FileRecord]:
        rows = self.db.execute("SELECT path, kind, sha256, size, mtime_ns, n_chunks, indexed_at FROM files")
        return {row[0]: FileRecord(*row) for row in rows}

    def failures(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, error FROM failures ORDER BY path"))

    def chunk_count(self) -> int:
        return self.vectors.ntotal

    def chunks(self, ids: Sequence[int]) -> list[ChunkRecord]:
        """Chunk records in the order of `ids` (ids not in the index are skipped)."""
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT id, path, ordinal, start, end, page, heading, n_tokens, text FROM chunks WHERE id IN ({marks})",
            [int(i) for i in ids],
        )
        by_id = {row[0]: ChunkRecord(*row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def document_text(self, path: str) -> str:
        row = self.db.execute("SELECT text FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise KeyError(path)
        return str(row[0])

    def page_span(self, path: str, page: int) -> tuple[int, int] | None:
        """Character offsets of a PDF page in the file's text (None: no such page)."""
        row = self.db.execute("SELECT start, end FROM pages WHERE path = ? AND number = ?", (path, page)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """(chunk id, inner product) of the k nearest chunks for each query row."""
        if self.vectors.ntotal == 0:
            return [[] for _ in range(len(queries))]
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self.vectors.search(queries, k, self.exact)
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
        meta = self.meta
        self.vectors: vectors.VectorIndex
        if base is None:
            self.db = sqlite3.connect(self.path / SQLITE)
            self.db.executescript(_SCHEMA)
            self.vectors = vectors.FlatVectors(vectors.new_flat(meta.dim))
        else:
            shutil.copyfile(base.path / SQLITE, self.path / SQLITE)
            self.db = sqlite3.connect(self.path / SQLITE)
            self.vectors = vectors.opened(base.meta.index_type, faiss.read_index(str(base.path / VECTORS)))
            self.meta = replace(meta, index_type=base.meta.index_type, ivf_trained_on=base.meta.ivf_trained_on,
                                nprobe=base.meta.nprobe)
        self.db.execute(_EXACT)  # not in _SCHEMA: indexes written before IVF-PQ lack it and get it here
        self.exact = ExactTable(self.db)
        # The staging copy is thrown away if we die, so it needs no journal.
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")

    def remove_file(self, path: str) -> int:
        """Drop a file and all its chunks; returns how many chunks went."""
        ids = [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]
        if ids:
            self.vectors.remove(np.asarray(ids, dtype=np.int64), self.exact)
        self.db.execute("DELETE FROM chunks WHERE path = ?", (path,))
        self.db.execute("DELETE FROM pages WHERE path = ?", (path,))
        self.db.execute("DELETE FROM files WHERE path = ?", (path,))
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
        first = self._take_ids(len(chunks))
        ids = np.arange(first, first + len(chunks), dtype=np.int64)
        self.db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*asdict(record).values(), text))
        self.db.executemany("INSERT INTO pages VALUES (?, ?, ?, ?)", [(record.path, *p) for p in pages])
        self.db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(int(i), record.path, *c) for i, c in zip(ids, chunks, strict=True)])
        if len(ids):
            self.vectors.add(ids, np.ascontiguousarray(embeddings, dtype=np.float32), self.exact)
            if vectors.switch_now(self.meta.index_policy, self.vectors):
                self._fit_vectors()  # from here on vectors go to disk, not into an index in memory

    def touch_file(self, path: str, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content did not change."""
        self.db.execute("UPDATE files SET mtime_ns = ? WHERE path = ?", (mtime_ns, path))

    def set_failures(self, failures: dict[str, str]) -> None:
        self.db.execute("DELETE FROM failures")
        now = time.time()
        self.db.executemany("INSERT INTO failures VALUES (?, ?, ?)", [(p, e, now) for p, e in failures.items()])

    def _take_ids(self, n: int) -> int:
        """Chunk ids are never reused, so an id names one chunk for the index's whole life."""
        first = int(self.db.execute("SELECT value FROM state WHERE key = 'next_chunk_id'").fetchone()[0])
        self.db.execute("UPDATE state SET value = ? WHERE key = 'next_chunk_id'", (first + n,))
        return first

    def publish(self) -> Path:
        """Make this the current snapshot, atomically, and return its folder."""
        self._check_consistent()
        self._fit_vectors()
        rows = self.db.execute("SELECT id, terms FROM chunks ORDER BY id").fetchall()
        bm25_files = lexical.build(self.path / lexical.FOLDER, np.array([r[0] for r in rows], dtype=np.int64),
                                   [r[1].split() for r in rows])
        self.db.commit()
        self.db.close()
        faiss.write_index(self.vectors.index, str(self.path / VECTORS))
        checksums = {name: _sha256_file(self.path / name) for name in (SQLITE, VECTORS, *bm25_files)}
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
        self.vectors = vectors.rebuild(self.vectors, kind, self.meta.dim, self.exact)
        self.meta = replace(self.meta, index_type=kind, ivf_trained_on=n if kind in vectors.TRAINED else 0,
                            nprobe=vectors.default_nprobe(self.vectors.index))

    def abort(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def _check_consistent(self) -> None:
        n_rows = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        if n_rows != self.vectors.ntotal:
            raise IndexCorrupt(f"staging index has {n_rows} chunk rows but {self.vectors.ntotal} vectors")
        n_exact = self.db.execute("SELECT COUNT(*) FROM exact").fetchone()[0]
        if n_exact != (n_rows if self.vectors.keeps_exact else 0):
            raise IndexCorrupt(f"staging index has {n_rows} chunk rows but {n_exact} exact vectors")


class ExactTable:
    """An IVF-PQ index's exact vectors, in the snapshot's SQLite (vectors.ExactVectors)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def put(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self.db.executemany("INSERT INTO exact VALUES (?, ?)",
                            ((int(i), v.astype(np.float32).tobytes()) for i, v in zip(ids, vecs, strict=True)))

    def ids(self) -> np.ndarray:
        return np.array([r[0] for r in self.db.execute("SELECT id FROM exact ORDER BY id")], dtype=np.int64)

    def delete(self, ids: np.ndarray) -> None:
        self.db.executemany("DELETE FROM exact WHERE id = ?", ((int(i),) for i in ids))

    def clear(self) -> None:
        self.db.execute("DELETE FROM exact")

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The exact vectors of chunks `ids`, in that order."""
        found: dict[int, bytes] = {}
        for first in range(0, len(ids), 30_000):  # SQLite's limit on bound parameters is 32,766
            part = [int(i) for i in ids[first: first + 30_000]]
            found |= dict(self.db.execute(f"SELECT id, vector FROM exact WHERE id IN ({','.join('?' * len(part))})",
                                          part))
        missing = [int(i) for i in ids if int(i) not in found]
        if missing:
            raise IndexCorrupt(f"the index has no exact vector for chunk {missing[0]}; "
                               "rebuild with `rag ingest --rebuild`")
        return np.array([np.frombuffer(found[int(i)], dtype=np.float32) for i in ids]).reshape(len(ids), -1)


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
