"""The catalog: one snapshot's SQLite database of files, pages, chunks, failures and (for an
IVF-PQ index) exact vectors, with every query the store runs on it. A published snapshot's
catalog is opened read-only; a staging snapshot's is a copy, written without a journal
(the copy is thrown away if its writer dies).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt

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


class Catalog:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.exact = ExactTable(db)

    @classmethod
    def read_only(cls, file: Path) -> Catalog:
        return cls(sqlite3.connect(f"file:{file}?mode=ro&immutable=1", uri=True, check_same_thread=False))

    @classmethod
    def writable(cls, file: Path, new: bool) -> Catalog:
        """A new catalog at `file`, or (new=False) the copy already there, opened for writing."""
        db = sqlite3.connect(file)
        if new:
            db.executescript(_SCHEMA)
        db.execute(_EXACT)  # not in _SCHEMA: indexes written before IVF-PQ lack it and get it here
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        return cls(db)

    def close(self) -> None:
        self.db.close()

    # -- reading ------------------------------------------------------------------------------

    def manifest(self) -> dict[str, FileRecord]:
        rows = self.db.execute("SELECT path, kind, sha256, size, mtime_ns, n_chunks, indexed_at FROM files")
        return {row[0]: FileRecord(*row) for row in rows}

    def failures(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, error FROM failures ORDER BY path"))

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

    def chunk_ids(self, path: str) -> list[int]:
        return [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]

    def all_terms(self) -> tuple[np.ndarray, list[list[str]]]:
        """Every chunk's id and BM25 terms, by id: what the BM25 index is built from."""
        rows = self.db.execute("SELECT id, terms FROM chunks ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1].split() for r in rows]

    def counts(self) -> tuple[int, int]:
        """(chunk rows, exact vectors)."""
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(chunks), int(self.db.execute("SELECT COUNT(*) FROM exact").fetchone()[0])

    # -- writing ------------------------------------------------------------------------------

    def remove_file(self, path: str) -> None:
        self.db.execute("DELETE FROM chunks WHERE path = ?", (path,))
        self.db.execute("DELETE FROM pages WHERE path = ?", (path,))
        self.db.execute("DELETE FROM files WHERE path = ?", (path,))

    def add_file(self, record: FileRecord, text: str, pages: Iterable[tuple[int, int, int]],
                 chunks: Sequence[tuple[int, int, int, int | None, str, int, str, str]]) -> np.ndarray:
        """Insert a file (not there yet) with its chunks; returns the chunks' new ids."""
        first = self._take_ids(len(chunks))
        ids = np.arange(first, first + len(chunks), dtype=np.int64)
        self.db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*asdict(record).values(), text))
        self.db.executemany("INSERT INTO pages VALUES (?, ?, ?, ?)", [(record.path, *p) for p in pages])
        self.db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(int(i), record.path, *c) for i, c in zip(ids, chunks, strict=True)])
        return ids

    def touch_file(self, path: str, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content did not change."""
        self.db.execute("UPDATE files SET mtime_ns = ? WHERE path = ?", (mtime_ns, path))

    def set_failures(self, failures: dict[str, str]) -> None:
        self.db.execute("DELETE FROM failures")
        now = time.time()
        self.db.executemany("INSERT INTO failures VALUES (?, ?, ?)", [(p, e, now) for p, e in failures.items()])

    def commit(self) -> None:
        self.db.commit()

    def _take_ids(self, n: int) -> int:
        """Chunk ids are never reused, so an id names one chunk for the index's whole life."""
        first = int(self.db.execute("SELECT value FROM state WHERE key = 'next_chunk_id'").fetchone()[0])
        self.db.execute("UPDATE state SET value = ? WHERE key = 'next_chunk_id'", (first + n,))
        return first


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
