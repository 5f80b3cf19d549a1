"""Starting the server: its options (shared by `rag serve`), the config they make, the refusal of a
non-loopback address without keys, and uvicorn on the host and port."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from rag.server.config import DEFAULT_KEYS, CollectionSpec, ServeConfig, load_toml
from rag.server.keys import KeyStore
from rag.settings import Settings

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", action="append", default=[], metavar="NAME=INDEX[:CORPUS]",
                        help="a collection to serve (repeatable); without CORPUS it is read-only")
    parser.add_argument("--config", type=Path, help="a TOML file (docs/api.md); flags win over it")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; another needs keys)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--keys", type=Path, help=f"the key store (default $RAG_KEYS or {DEFAULT_KEYS})")
    parser.add_argument("--generator", help="the generator (default $RAG_GENERATOR or the shipped one)")
    parser.add_argument("--server", help="an OpenAI-compatible server running the generator (default $RAG_SERVER)")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="drop unsupported sentences, as rag ask --strict (with the reader the server loads, "
                             "only wholly supported drafts are kept anyway)")
    parser.add_argument("--queue", type=int, help="answers waiting for the models at most (default 8)")
    parser.add_argument("--max-question", type=int, help="characters of a question at most (default 2000)")


def config_from(args: argparse.Namespace, settings: Settings) -> ServeConfig:
    """The file's config (if any), then $RAG_KEYS, then the flags given."""
    config = load_toml(args.config) if args.config else ServeConfig()
    keys = args.keys or config.keys or (Path(settings.keys) if settings.keys else DEFAULT_KEYS)
    given = {"host": args.host, "port": args.port, "keys": keys, "generator": args.generator,
             "server": args.server, "strict": args.strict, "queue": args.queue, "max_question": args.max_question}
    config = replace(config, **{name: value for name, value in given.items() if value is not None})
    return config.with_collections([CollectionSpec.parse(text) for text in args.collection]).check()


def refusal(config: ServeConfig) -> str | None:
    """Why this config may not be served: a non-loopback address with no key to require."""
    if config.loopback or KeyStore(config.key_store).any_active():
        return None
    return (f"refusing to listen on {config.host}: no API key in {config.key_store}, so anyone who can reach it could "
            f"read every collection. Create one with `rag keys create --collections NAME`, or bind 127.0.0.1.")


def serve(config: ServeConfig, settings: Settings | None = None) -> int:
    """Run the server until it is stopped (models and indexes load after it starts listening)."""
    import uvicorn

    from rag.server.app import create_app
    from rag.server.collections import Collections

    settings = settings or Settings.from_env()
    why = refusal(config)
    if why:
        print(f"rag serve: {why}", file=sys.stderr)
        return EXIT_USAGE
    app = create_app(config, lambda: Collections.load(config, settings))
    print(f"rag serve: http://{config.host}:{config.port} ({', '.join(c.name for c in config.collections)}); "
          "loading the models, /health says when ready", file=sys.stderr, flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=5)
    return 0
