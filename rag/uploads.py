"""Files uploaded through the web UI: checked, given a safe name, and saved inside the corpus only.

A browser sends any name and any bytes. The name is reduced to its last part, to letters,
digits, dot, dash and underscore, and must keep an extension the indexer reads; the file is
saved under the corpus's `uploads/` folder (never over an existing file: a number is added),
atomically, and never anywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag.fsutil import atomic_path
from rag.ingest.loaders import LOADERS

UPLOADS = "uploads"
MAX_UPLOAD_BYTES = 20 * 2**20
ALLOWED = tuple(sorted(LOADERS))


class UploadError(ValueError):
    """The upload was refused; the message names the file and the reason."""


def safe_name(name: str) -> str:
    """The file name reduced to a safe, plain one, or UploadError."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")
    suffix = Path(cleaned).suffix.lower()
    if not cleaned or not Path(cleaned).stem:
        raise UploadError(f"{name!r}: not a usable file name")
    if suffix not in LOADERS:
        raise UploadError(f"{name!r}: type {suffix or '(none)'} is not indexed; allowed: {', '.join(ALLOWED)}")
    return cleaned


def save(corpus: Path, name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Save `data` as corpus/uploads/<safe name> (numbered if taken) and return the path."""
    if len(data) > max_bytes:
        raise UploadError(f"{name!r}: {len(data) / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
    if not data:
        raise UploadError(f"{name!r}: the file is empty")
    folder = (corpus / UPLOADS).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    clean = Path(safe_name(name))
    target = folder / clean.name
    n = 1
    while target.exists():
        target = folder / f"{clean.stem}-{n}{clean.suffix}"
        n += 1
    if not target.resolve().is_relative_to(corpus.resolve()):  # cannot happen after safe_name; checked anyway
        raise UploadError(f"{name!r}: would be saved outside the corpus")
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target
