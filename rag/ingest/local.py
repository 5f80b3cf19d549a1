"""The local ingestion engine: a background thread parses files (each in a sandboxed worker
process) while this thread embeds them in groups on every core, and stages each file.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from tqdm import tqdm

from rag import threads
from rag.catalog import FileRecord
from rag.embed import Embedder
from rag.ingest.chunker import ChunkConfig, Chunker
from rag.ingest.sandbox import ParseLimits, Parser
from rag.ingest.scan import Candidate
from rag.ingest.work import IngestOptions, IngestReport, Parsed, needs_embedding, parse_one, stage_file
from rag.store import Staging

EMBED_GROUP = 512  # chunks embedded together: bigger groups sort better by length


def load_and_embed(to_read: list[Candidate], manifest: dict[str, FileRecord], embedder: Embedder,
                   chunking: ChunkConfig, staging: Staging, report: IngestReport, failures: dict[str, str],
                   options: IngestOptions) -> None:
    """Parse, embed and stage every file of `to_read` (recording failures and unchanged files)."""
    chunker = Chunker(embedder.tokenizer, embedder.max_tokens, chunking)
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
