"""One Settings object reads every RAG_* variable; the CLI and the web UI both take their defaults from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rag
from rag import cli
from rag.generate.backends import SHIPPED
from rag.service import AskOptions
from rag.settings import Settings


def test_settings_read_every_variable_and_treat_empty_as_unset() -> None:
    env = {"RAG_INDEX": "idx", "RAG_GENERATOR": "model.gguf", "RAG_SERVER": "http://gpu:8000/v1",
           "RAG_STRICT": "1", "RAG_READER": "", "RAG_CACHE": "/c"}
    settings = Settings.from_env(env)
    assert (settings.index, settings.generator, settings.server, settings.strict, settings.reader, settings.cache) == \
        ("idx", "model.gguf", "http://gpu:8000/v1", True, None, "/c")
    assert Settings.from_env({"RAG_STRICT": "0"}).strict is False and Settings.from_env({}) == Settings()
    assert Settings().generator_adapter == SHIPPED and Settings(adapter="none").generator_adapter is None
    assert Settings(adapter="my-adapter").generator_adapter == "my-adapter"


def test_no_module_reads_a_rag_variable_itself() -> None:
    package = Path(rag.__file__).parent
    readers = [f"{path.relative_to(package)}: {line.strip()}" for path in package.rglob("*.py")
               if path.name != "settings.py" for line in path.read_text().splitlines()
               if re.search(r"environ(\.get\(|\[)\s*[\"']RAG_", line)]
    assert not readers, readers


def test_the_cli_and_the_ui_honour_the_same_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_GENERATOR", "other.gguf")
    monkeypatch.setenv("RAG_SERVER", "http://gpu:8000/v1")
    monkeypatch.setenv("RAG_STRICT", "yes")
    monkeypatch.setenv("RAG_INDEX", "elsewhere")
    args = cli.parser().parse_args(["ask", "why?"])
    assert (args.generator, args.server, args.strict, args.index) == ("other.gguf", "http://gpu:8000/v1", True,
                                                                      "elsewhere")
    start = AskOptions.from_settings(Settings.from_env())
    assert (start.generator, start.server, start.strict) == ("other.gguf", "http://gpu:8000/v1", True)
