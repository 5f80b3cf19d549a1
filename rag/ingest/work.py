"""What both ingestion engines share: the options, the report, a parsed file, and the steps
from a file to the staging snapshot (parse it, decide whether it needs embedding, stage it).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rag import lexical
from rag.catalog import FileRecord
from rag.ingest.chunker import Chunk, Chunker
from rag.ingest.loaders import LoadError
from rag.ingest.sandbox import ParseLimits, Parser
from rag.ingest.scan import DEFAULT_MAX_FILE_BYTES, Candidate
from rag.store import Staging


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
