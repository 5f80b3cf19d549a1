"""Embedder backends: the ONNX export agrees with sentence-transformers on real text, its cache
is atomic and self-repairing, an index refuses another backend, length-aware batching, and
`rag search` on an ONNX-built index never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import Index, IndexMismatch, models
from rag.embed import BACKENDS, make_embedder, onnx_backend, token_batches
from rag.fsutil import sha256_file

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
# Lowest cosine with torch fp32 allowed per backend on real text (benchmarks/embedders.py measured
# fp32 at 1.0000 and int8 at 0.977 minimum over 800 demo chunks).
MIN_COSINE = {"onnx-fp32": 0.9999, "onnx-int8": 0.95}
TEXTS = [
    "Overdraft fees are charged when a payment exceeds the available balance.",
    "python3 -m venv tutorial-env creates a virtual environment in the tutorial-env folder.",
    "The shopt builtin toggles the values of settings controlling optional shell behavior. " * 12,  # long
    "Brace expansion generates arbitrary strings.",
    "",  # empty text: special tokens only
]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return make_embedder("all-MiniLM-L6-v2", "torch").embed(TEXTS)


@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_onnx_vectors_agree_with_sentence_transformers(backend: str, torch_vectors: np.ndarray) -> None:
    embedder = make_embedder("all-MiniLM-L6-v2", backend)
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == torch_vectors.shape == (len(TEXTS), embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * torch_vectors).sum(axis=1)
    assert cosine.min() >= MIN_COSINE[backend], cosine
    # Input order is kept although batches are sorted by length.
    assert np.allclose(embedder.embed(TEXTS[::-1])[::-1], vectors, atol=1e-5)


def test_token_batches_sort_by_length_and_keep_within_the_budget() -> None:
    lengths = [10, 300, 50, 50, 200, 5]
    batches = token_batches(lengths, budget=400)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [lengths[i] for b in batches for i in b] == sorted(lengths, reverse=True)
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 400
    assert token_batches([1000, 10], budget=400)[0] == [0]  # longer than the budget: alone


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="onnx-int8"):
        make_embedder("all-MiniLM-L6-v2", "tensorflow")
    assert set(BACKENDS) == {"torch", "onnx-fp32", "onnx-int8"}


def test_a_corrupt_cached_export_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = make_embedder("all-MiniLM-L6-v2", "onnx-int8").model_file  # type: ignore[attr-defined]
    monkeypatch.setenv("RAG_CACHE", str(tmp_path))
    folder = tmp_path / "onnx" / cached.parent.name
    folder.mkdir(parents=True)
    for name in ("model-fp32.onnx", "model-fp32.sha256", "model-int8.sha256"):
        (folder / name).write_bytes((cached.parent / name).read_bytes())
    good = cached.read_bytes()
    (folder / "model-int8.onnx").write_bytes(good[: len(good) // 2])  # a half-copied file
    remade = onnx_backend.exported(models.resolve("all-MiniLM-L6-v2"), quantized=True)
    assert remade == folder / "model-int8.onnx"
    assert (folder / "model-int8.sha256").read_text().strip() == sha256_file(remade)
    assert len(remade.read_bytes()) == len(good)
    assert make_embedder("all-MiniLM-L6-v2", "onnx-int8").embed(["still works"]).shape == (1, 384)


def test_a_failed_export_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CACHE", str(tmp_path))

    def crash(model_dir: Path, out: Path) -> None:
        out.write_bytes(b"half an export")
        raise KeyboardInterrupt  # as if killed halfway

    monkeypatch.setattr(onnx_backend, "_export", crash)
    with pytest.raises(KeyboardInterrupt):
        onnx_backend.exported(models.resolve("all-MiniLM-L6-v2"), quantized=False)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["model-fp32.lock"]  # empty, released


def test_processes_starting_together_export_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four loaders at once on an empty cache (as Ray actors or test workers start): one exports, the
    others wait for it and use its file. flock excludes separately opened files, threads included."""
    monkeypatch.setenv("RAG_CACHE", str(tmp_path))
    calls = []

    def slow_export(model_dir: Path, out: Path) -> None:
        calls.append(out)
        time.sleep(0.5)
        out.write_bytes(b"an exported model")

    monkeypatch.setattr(onnx_backend, "_export", slow_export)
    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(lambda _: onnx_backend.exported(models.resolve("all-MiniLM-L6-v2"), quantized=False),
                             range(4)))
    (path,) = paths
    assert len(calls) == 1 and path.read_bytes() == b"an exported model"
    assert path.with_suffix(".sha256").read_text().strip() == sha256_file(path)


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("onnx-index")
    (root / "docs").mkdir()
    for name in ("sample.md", "sample.html"):
        (root / "docs" / name).write_bytes((FIXTURES / name).read_bytes())
    Index(root / "idx", embedder_backend="onnx-int8").ingest([root / "docs"], progress=False)
    return root


def test_the_index_records_its_backend_and_refuses_another(onnx_index: Path) -> None:
    with Index(onnx_index / "idx") as index:
        assert index.info().embedder_backend == "onnx-int8"
        assert index.search("sample", k=1, mode="dense")  # the recorded backend is the default
    with Index(onnx_index / "idx", embedder_backend="torch") as other:
        with pytest.raises(IndexMismatch, match=r"'onnx-int8' embedder backend, not 'torch'.*--rebuild"):
            other.search("sample", k=1, mode="dense")
        with pytest.raises(IndexMismatch, match=r"'onnx-int8' embedder backend, not 'torch'"):
            other.ingest([onnx_index / "docs"], progress=False)


def test_rag_search_on_an_onnx_index_never_imports_torch(onnx_index: Path) -> None:
    code = ("import sys, json\nfrom rag.cli import main\n"
            f"code = main(['search', 'sample heading', '--index', {str(onnx_index / 'idx')!r}, '--json'])\n"
            "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
            "print(json.dumps({'code': code, 'heavy': heavy}))")
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}, out.stderr


def test_a_gpu_machine_defaults_to_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import rag.embed

    monkeypatch.setattr(rag.embed, "NVIDIA_DEVICE", tmp_path / "nvidiactl")
    assert rag.embed.default_backend() == "onnx-int8"
    (tmp_path / "nvidiactl").touch()
    assert rag.embed.default_backend() == "torch"
    assert make_embedder("all-MiniLM-L6-v2").backend == "torch"
