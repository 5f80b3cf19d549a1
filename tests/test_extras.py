"""The base install indexes, searches and answers; each optional part names the extra it needs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
OPTIONAL = ("streamlit", "matplotlib", "sklearn", "ray", "fastapi", "uvicorn")

BLOCKED = f"""
import sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None  # import raises, as if not installed
import rag.index, rag.pipeline, rag.service, rag.cli
from rag import Index, Pipeline
sys.exit(rag.cli.main(["ui"]))
"""


def test_the_base_dependencies_leave_the_optional_parts_to_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    assert not any(name in base for name in ("streamlit", "matplotlib", "scikit-learn", "ray", "fastapi", "uvicorn",
                                             "llama"))
    extras = project["optional-dependencies"]
    assert {"eval", "train", "ui", "ray", "serve", "llamacpp", "dev"} <= set(extras)
    assert any("rag[eval,train,ui,ray,serve,llamacpp]" in d for d in extras["dev"])  # make test runs every part


def test_without_the_extras_answering_imports_and_the_ui_names_its_extra() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "pip install -e '.[ui]'" in done.stderr, done.stderr
