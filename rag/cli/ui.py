"""`rag ui`: the Streamlit web UI over an index."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from rag.cli.options import index_option
from rag.cli.render import EXIT_ERROR
from rag.settings import Settings

CHECKOUT = Path(__file__).resolve().parents[2]  # the project's checkout: rag/cli/ui.py -> .


def register(sub: Any, env: Settings) -> None:
    ui = sub.add_parser("ui", help="open the web UI (Streamlit) on http://127.0.0.1:8501")
    index_option(ui, env)
    ui.add_argument("--corpus", type=Path, default=Path(env.corpus or "corpus"),
                    help="folder that uploads go into and rebuilds index ($RAG_CORPUS, default corpus)")
    ui.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8501)
    ui.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `streamlit run ui/app.py` from the checkout's root (where .streamlit/config.toml holds the
    UI's Streamlit options) in this process's place (exec: stopping `rag ui` stops the server, no
    orphan is left), bound to `--address`."""
    if importlib.util.find_spec("streamlit") is None:
        raise ModuleNotFoundError("No module named 'streamlit'", name="streamlit")
    app = CHECKOUT / "ui" / "app.py"
    if not app.is_file():
        print(f"rag ui: no web UI at {app}: install the project from its checkout (pip install -e .)", file=sys.stderr)
        return EXIT_ERROR
    env = os.environ | {"RAG_INDEX": str(Path(args.index).resolve()), "RAG_CORPUS": str(args.corpus.resolve())}
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.address,
               "--server.port", str(args.port)]
    print(f"rag ui: http://{args.address}:{args.port} over {args.index} (corpus {args.corpus}); Ctrl-C stops",
          file=sys.stderr)
    os.chdir(CHECKOUT)
    os.execve(sys.executable, command, env)
