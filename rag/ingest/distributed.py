"""Parse and embed on a Ray cluster (`rag ingest --engine ray`): a Ray Data pipeline whose
results are written as Parquet shards, then merged into the staging snapshot by this process.

    files -> map_batches(ParseFiles) -> map_batches(EmbedChunks, GPU when the cluster has one)
          -> write_parquet(shards) -> merged here, file by file, as the local engine merges

Only the parse-and-embed work moves: planning (what is new, changed or deleted), the manifest,
failures and publishing are the local engine's own code, so both engines give the same index.
The shards hold JSON records and float32 bytes, never pickles. With `address`, the workers must
have this package installed (`pip install 'rag[ray]'`) and see the corpus and the index folder
at the same paths (shared storage); without it a local Ray starts for the run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rag.catalog import FileRecord
from rag.embed import Embedder, make_embedder
from rag.ingest.chunker import Chunk, ChunkConfig, Chunker
from rag.ingest.sandbox import ParseLimits, Parser
from rag.ingest.scan import Candidate
from rag.ingest.work import IngestOptions, IngestReport, Parsed, needs_embedding, parse_one, stage_file
from rag.store import SCRATCH, Staging

PARSE_BATCH = 8  # files per parse call
EMBED_BATCH = 16  # files per embedding call


class ParseFiles:
    """Ray actor: read, parse (in a sandboxed worker process) and chunk a batch of files. A file whose
    content hash is in `indexed` (touched, not changed) keeps no chunks: nothing to embed."""

    def __init__(self, embedder: tuple[str, str], chunking: ChunkConfig, limits: ParseLimits,
                 indexed: dict[str, str]) -> None:
        model = make_embedder(*embedder)  # the tokenizer only: the model loads on first embed
        self.chunker = Chunker(model.tokenizer, model.max_tokens, chunking)
        self.parser = Parser(limits)
        self.indexed = indexed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        records = []
        for path, size, mtime_ns in zip(batch["path"], batch["size"], batch["mtime_ns"], strict=True):
            parsed = parse_one(Candidate(Path(str(path)), int(size), int(mtime_ns)), self.chunker, self.parser)
            if self.indexed.get(str(path)) == parsed.sha256:
                parsed.chunks, parsed.terms = [], []
            records.append(json.dumps(_record(parsed)))
        return {"record": records}


class EmbedChunks:
    """Ray actor: embed every chunk of a batch of parsed files (one model load per actor)."""

    def __init__(self, embedder: tuple[str, str]) -> None:
        self.embedder = make_embedder(*embedder)  # (model name, backend)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        records = [json.loads(str(r)) for r in batch["record"]]
        texts = [Chunk(**c).embedded for r in records for c in r["chunks"]]
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, 0), np.float32)
        out, row = [], 0
        for record in records:
            n = len(record["chunks"])
            out.append(np.ascontiguousarray(vectors[row: row + n], dtype=np.float32).tobytes())
            row += n
        return {"record": list(batch["record"]), "embeddings": out}


def load_and_embed(to_read: list[Candidate], manifest: dict[str, FileRecord], embedder: Embedder,
                   chunking: ChunkConfig, staging: Staging, report: IngestReport, failures: dict[str, str],
                   options: IngestOptions) -> None:
    """The Ray counterpart of the local engine's parse-and-embed loop (same arguments, same effect)."""
    if not to_read:
        return
    shards = staging.index_dir / f"{SCRATCH}shards-{os.getpid()}-{time.time_ns()}"
    try:
        indexed = {str(c.path): manifest[str(c.path)].sha256 for c in to_read if str(c.path) in manifest}
        _run_pipeline(to_read, indexed, (embedder.name, embedder.backend), chunking, options, shards)
        for read, (parsed, embeddings) in enumerate(_merged(shards, embedder.dim), 1):
            if options.on_progress:
                options.on_progress(read, len(to_read))
            if needs_embedding(parsed, manifest, staging, report, failures):
                stage_file(staging, parsed, embeddings, manifest, report)
                report.chunks_embedded += len(parsed.chunks)
    finally:
        shutil.rmtree(shards, ignore_errors=True)


def _run_pipeline(to_read: list[Candidate], indexed: dict[str, str], embedder: tuple[str, str], chunking: ChunkConfig,
                  options: IngestOptions, shards: Path) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    try:
        ray.data.DataContext.get_current().enable_progress_bars = bool(options.progress)
        logging.getLogger("ray.data").setLevel(logging.INFO if options.progress else logging.WARNING)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        gpus = int(ray.cluster_resources().get("GPU", 0))
        items = [{"path": str(c.path), "size": c.size, "mtime_ns": c.mtime_ns} for c in to_read]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // PARSE_BATCH, 4 * cpus)))
        # Half a CPU per actor, so that parsing, embedding and the shard writes all fit on two cores.
        pool = ray.data.ActorPoolStrategy
        parse_args = (embedder, chunking, options.parse_limits, indexed)
        parsed = dataset.map_batches(ParseFiles, fn_constructor_args=parse_args, batch_size=PARSE_BATCH, num_cpus=0.5,
                                     compute=pool(min_size=1, max_size=max(1, cpus // 2)))
        embedded = parsed.map_batches(EmbedChunks, fn_constructor_args=(embedder,), batch_size=EMBED_BATCH,
                                      num_gpus=1 if gpus else 0, num_cpus=0.5,
                                      compute=pool(min_size=1, max_size=max(1, gpus or cpus // 2)))
        embedded.write_parquet(str(shards), ray_remote_args={"num_cpus": 0.25})
    finally:
        if started_here:
            ray.shutdown()


def _merged(shards: Path, dim: int) -> Iterator[tuple[Parsed, np.ndarray]]:
    """Each file's parse result and vectors, one shard in memory at a time (a corpus's texts and
    vectors together need not fit)."""
    import pyarrow.parquet as pq

    for shard in sorted(shards.glob("*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            parsed = _parsed(json.loads(row["record"]))
            yield parsed, np.frombuffer(row["embeddings"], dtype=np.float32).reshape(len(parsed.chunks), dim)


def _record(parsed: Parsed) -> dict[str, Any]:
    cand = parsed.candidate
    return {"path": str(cand.path), "size": cand.size, "mtime_ns": cand.mtime_ns, "sha256": parsed.sha256,
            "kind": parsed.kind, "text": parsed.text, "pages": parsed.pages,
            "chunks": [asdict(c) for c in parsed.chunks], "terms": parsed.terms, "error": parsed.error}


def _parsed(record: dict[str, Any]) -> Parsed:
    return Parsed(Candidate(Path(record["path"]), record["size"], record["mtime_ns"]), record["sha256"],
                  record["kind"], record["text"], [tuple(p) for p in record["pages"]],
                  [Chunk(**c) for c in record["chunks"]], record["terms"], record["error"])
