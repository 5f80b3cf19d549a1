"""Files: durable writes (a reader sees the old file or the new one, never a part of it) and
JSON-lines reading with errors that name the line."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read a MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on leaving without error it is fsynced and
    renamed over `path` (on error it is removed and `path` left as it was)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Wait for and hold an flock on `lock_file` (made if missing): one process at a time makes a
    cached file, the others find it made. The kernel drops the lock when its holder dies."""
    with lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_jsonl(path: Path, fields: tuple[str, ...] = (), problems: list[str] | None = None) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, blank lines skipped. A line that is not a JSON object, or
    lacks one of the string `fields`, is an error naming the file and line; given a `problems`
    list, the error is appended to it instead and the line skipped (one bad line does not stop a run)."""
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row, error = _parse_line(line, fields)
            if error is None:
                rows.append(row)
            elif problems is None:
                raise ValueError(f"{path}: line {n} {error}")
            else:
                problems.append(f"{path}: line {n} {error}")
    return rows


def _parse_line(line: str, fields: tuple[str, ...]) -> tuple[dict[str, Any], str | None]:
    """The line's object, or why it is not one with the string `fields`."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return {}, f"is not JSON ({exc.msg})"
    if not isinstance(row, dict):
        return {}, "is not a JSON object"
    missing = [f for f in fields if not isinstance(row.get(f), str)]
    return (row, None) if not missing else ({}, f"lacks a string {' / '.join(repr(f) for f in missing)}")
