"""`rag serve`: the served API over one or more collections (docs/api.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rag.cli.render import EXIT_ERROR
from rag.server import run as server
from rag.server.config import ConfigError
from rag.settings import Settings


def register(sub: Any, env: Settings) -> None:
    serve = sub.add_parser("serve", help="serve collections over HTTP: OpenAI-compatible chat with sources, REST",
                           description="Serve indexes (collections) over HTTP on 127.0.0.1 (docs/api.md).")
    server.add_arguments(serve)
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        config = server.config_from(args, settings)
    except ConfigError as exc:
        print(f"rag serve: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return server.serve(config, settings)
