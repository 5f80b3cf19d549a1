"""`rag info`: describe an index."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from rag.cli.options import index_option
from rag.cli.render import EXIT_OK, display_path, print_json
from rag.index import Index
from rag.settings import Settings


def register(sub: Any, env: Settings) -> None:
    info = sub.add_parser("info", help="describe an index")
    index_option(info, env)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with Index(args.index) as index:
        info = index.info()
    if args.json:
        print_json(asdict(info))
        return EXIT_OK
    print(f"index       {info.path} ({info.snapshot})\nfiles       {info.files}\nchunks      {info.chunks}\n"
          f"embedder    {info.embedder} (dim {info.dim}, {info.embedder_backend})\nindex type  {info.index_type}\n"
          f"chunking    {info.chunk_tokens} tokens, {info.overlap_tokens} overlap\n"
          f"size        {info.size_bytes / 2**20:.1f} MiB")
    for failure in info.failed:
        print(f"failed      {display_path(failure['path'])}: {failure['error']}")
    return EXIT_OK
