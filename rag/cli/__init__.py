"""The `rag` command: ingest, search, ask, verify, eval, train, finetune, ui, serve, keys, info.

Every reporting command takes --json. Each command group is a module here with
`register(sub, env)`, which adds its subparser(s) and points them at their handler with
`set_defaults(func=...)`; `COMMANDS` lists the modules in the order `rag --help` shows them.
A new command group is one module and one entry in `COMMANDS`. Options several commands share
are in `options`, what they print (text and JSON) in `render`."""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from rag.cli import ask, evaluate, info, ingest, keys, search, serve, train, ui
from rag.cli.render import EXIT_ERROR
from rag.generate.backends import GeneratorError
from rag.models import ModelNotFoundError
from rag.settings import Settings
from rag.store import StoreError

COMMANDS: tuple[ModuleType, ...] = (ingest, search, ask, evaluate, train, ui, serve, keys, info)
# Modules of the optional parts, and the extra (pyproject.toml) that brings each.
EXTRAS = {"streamlit": "ui", "matplotlib": "eval", "sklearn": "eval", "ray": "ray", "fastapi": "serve",
          "uvicorn": "serve", "prometheus_client": "serve", "multipart": "serve"}


def parser() -> argparse.ArgumentParser:
    """The whole command line: each module of `COMMANDS` adds its own subcommands."""
    top = argparse.ArgumentParser(prog="rag", description="Question answering over your own documents.")
    sub = top.add_subparsers(dest="command", required=True)
    env = Settings.from_env()
    for command in COMMANDS:
        command.register(sub, env)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    notices = logging.getLogger("rag")  # one-off notices of this package, such as model conversion
    if not notices.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("rag: %(message)s"))
        notices.addHandler(handler)
        notices.setLevel(logging.INFO)
    try:
        return int(args.func(args))
    except (StoreError, ModelNotFoundError, GeneratorError, ValueError, OSError) as exc:
        print(f"rag {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"rag {args.command}: error: this needs {exc.name}, which the base install leaves out: "
              f"pip install -e '.[{extra}]'", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"rag {args.command}: interrupted", file=sys.stderr)
        return 130
