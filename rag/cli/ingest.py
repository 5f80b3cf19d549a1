"""`rag ingest`: index files and folders."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rag.cli.options import index_option
from rag.cli.render import EXIT_FILES_FAILED, EXIT_OK, print_json, print_report, report_json
from rag.embed import BACKENDS, DEFAULT_BACKEND, GPU_BACKEND
from rag.index import Index
from rag.ingest.chunker import ChunkConfig
from rag.ingest.pipeline import ENGINES
from rag.ingest.sandbox import DEFAULT_TIMEOUT_S, ParseLimits
from rag.settings import Settings
from rag.vectors import POLICIES


def register(sub: Any, env: Settings) -> None:
    ingest = sub.add_parser("ingest", help="index files and folders; only new or changed files are embedded")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    index_option(ingest, env)
    ingest.add_argument("--rebuild", action="store_true", help="rebuild from scratch (old index stays live until done)")
    ingest.add_argument("--wait", action="store_true", help="wait for another ingest into this index to finish")
    ingest.add_argument("--embedder", help="embedding model: packaged name, local folder or hub id")
    ingest.add_argument("--embedder-backend", choices=BACKENDS,
                        help=f"how to run it: {', '.join(BACKENDS)} (new index or --rebuild; default "
                             f"{DEFAULT_BACKEND}, {GPU_BACKEND} with an NVIDIA GPU); kept by the index")
    ingest.add_argument("--chunk-tokens", type=int, help="chunk size in tokens (new index or --rebuild)")
    ingest.add_argument("--overlap-tokens", type=int, help="tokens shared by neighbouring chunks")
    ingest.add_argument("--max-file-mb", type=float, help="skip files larger than this (default 50)")
    ingest.add_argument("--parse-timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds one file may take to parse before it is skipped (default {DEFAULT_TIMEOUT_S:g})")
    ingest.add_argument("--index-type", choices=POLICIES,
                        help="vector index: exact flat, approximate ivf, auto (ivf from 100k chunks), or ivfpq "
                             "(compressed, for more vectors than memory; exact below 10k chunks); kept")
    ingest.add_argument("--engine", choices=ENGINES, default="local",
                        help="local, or ray: parse and embed as a Ray Data pipeline (needs the [ray] extra)")
    ingest.add_argument("--address", help="Ray cluster address for --engine ray (default: start a local Ray)")
    ingest.add_argument("--json", action="store_true", help="print one JSON object")
    ingest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chunking = None
    if args.chunk_tokens or args.overlap_tokens is not None:
        default = ChunkConfig()
        chunking = ChunkConfig(args.chunk_tokens or default.chunk_tokens,
                               default.overlap_tokens if args.overlap_tokens is None else args.overlap_tokens)
    index = Index(args.index, embedder=args.embedder, embedder_backend=args.embedder_backend, chunking=chunking)
    max_bytes = int(args.max_file_mb * 2**20) if args.max_file_mb else None
    report = index.ingest(args.paths, rebuild=args.rebuild, wait=args.wait, max_file_bytes=max_bytes,
                          index_type=args.index_type, parse_limits=ParseLimits(timeout_s=args.parse_timeout),
                          engine=args.engine, address=args.address)
    if args.json:
        print_json(report_json(report))
    else:
        print_report(report, args.index)
    return EXIT_OK if report.ok else EXIT_FILES_FAILED
