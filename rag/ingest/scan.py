"""Find the files to index under the paths a user gave, and the ones that must be skipped.

Skipped files are reported with their reason rather than silently ignored, except
files of types we do not read and hidden files, which a corpus folder commonly holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rag.ingest.loaders import LOADERS

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    path: Path  # absolute, as reached from its root (symlinks inside the corpus are kept as named)
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanResult:
    roots: list[Path]  # absolute roots the scan covered: deletions are only looked for under them
    files: list[Candidate]
    failed: dict[Path, str]


def scan(paths: list[Path], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ScanResult:
    roots, files, failed = [], [], {}
    for given in paths:
        root = Path(os.path.abspath(given))
        if not root.exists() and not root.is_symlink():
            failed[root] = "no such file or folder"
            continue
        roots.append(root)
        entries = [root] if not root.is_dir() else _walk(root, failed)
        boundary = root.resolve() if root.is_dir() else root.resolve().parent
        for path in entries:
            reason = _check(path, boundary, max_file_bytes)
            if reason:
                failed[path] = reason
            else:
                stat = path.stat()
                files.append(Candidate(path, stat.st_size, stat.st_mtime_ns))
    return ScanResult(roots, sorted(files, key=lambda c: c.path), failed)


def _walk(root: Path, failed: dict[Path, str]) -> list[Path]:
    """Files of a supported type below `root`; hidden files and folders are left out."""
    found = []

    def on_error(err: OSError) -> None:
        failed[Path(err.filename or root)] = f"cannot list folder: {err.strerror}"

    for folder, dirs, names in os.walk(root, onerror=on_error, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in LOADERS:
                found.append(Path(folder) / name)
    return found


def _check(path: Path, boundary: Path, max_file_bytes: int) -> str | None:
    """Why `path` cannot be indexed, or None."""
    if Path(path).suffix.lower() not in LOADERS:
        return f"unsupported file type {path.suffix!r} (supported: {', '.join(sorted(LOADERS))})"
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return "broken symbolic link"
        if not target.is_relative_to(boundary):
            return f"symbolic link points outside the corpus (to {target})"
    if not path.is_file():
        return "not a regular file"
    size = path.stat().st_size
    if size > max_file_bytes:
        return f"file is {size / 2**20:.1f} MiB, over the {max_file_bytes / 2**20:.1f} MiB limit"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None
