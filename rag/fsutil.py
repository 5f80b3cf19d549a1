"""Files: durable writes (a reader sees the old file or the new one, never a part of it) and
JSON-lines reading with errors that name the line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)


def read_jsonl(path: Path, fields: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, blank lines skipped. A line that is not a JSON object, or
    lacks one of the string `fields`, is an error naming the file and line."""
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {n} is not JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or not all(isinstance(row.get(f), str) for f in fields):
                raise ValueError(f"{path}: line {n} lacks a string {' / '.join(repr(f) for f in fields)}"
                                 if fields else f"{path}: line {n} is not a JSON object")
            rows.append(row)
    return rows
