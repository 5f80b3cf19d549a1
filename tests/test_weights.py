"""Generator weights: the converted copy is found again by content, and adapters are checked."""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag import models
from rag.generate import backends, weights


def test_a_reinstalled_gguf_finds_the_copy_already_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "a" / "m.gguf"
    first.parent.mkdir()
    first.write_bytes(os.urandom(3 << 20))
    made: list[Path] = []

    def convert(gguf: Path, out: Path) -> None:
        made.append(gguf)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(weights, "_convert", convert)
    folder = weights.converted(first)
    again = tmp_path / "b" / "m.gguf"  # the same file elsewhere, with a new modification time
    again.parent.mkdir()
    shutil.copy(first, again)
    os.utime(again, (1, 1))
    assert weights.converted(again) == folder and made == [first]
    changed = bytearray(first.read_bytes())
    changed[-1] ^= 1
    again.write_bytes(bytes(changed))
    assert weights.converted(again) != folder and len(made) == 2
    assert not list(folder.parent.glob(".*.tmp"))


def test_processes_starting_together_convert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(os.urandom(1 << 20))
    made: list[Path] = []

    def slow_convert(source: Path, out: Path) -> None:
        made.append(source)
        time.sleep(0.5)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(weights, "_convert", slow_convert)
    with ThreadPoolExecutor(3) as pool:  # flock excludes separately opened files, threads included
        (folder,) = set(pool.map(lambda _: weights.converted(gguf), range(3)))
    assert made == [gguf] and (folder / "config.json").is_file()


def test_an_adapter_folder_must_hold_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(models.ModelNotFoundError, match="no adapter_config.json"):
        backends.make(adapter=tmp_path)
    assert backends.make(adapter=None).name == weights.DEFAULT_GENERATOR
    assert weights.shipped_adapter("some-other-model") is None


def test_an_adapter_for_another_base_model_is_refused_before_loading(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B"}))
    with pytest.raises(ValueError, match="trained for base model 'Qwen/Qwen2.5-0.5B', not 'SmolLM2-135M-Instruct'"):
        backends.make(adapter=tmp_path)
    shipped = weights.shipped_adapter(weights.DEFAULT_GENERATOR)
    assert shipped is not None
    backends.check_adapter(shipped, weights.DEFAULT_GENERATOR)  # the shipped one fits its base
