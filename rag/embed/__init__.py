"""Text embedders: one protocol, three backends chosen by name.

`torch` runs the sentence-transformers model (what a GPU machine uses); `onnx-fp32` and
`onnx-int8` run an ONNX export of the same model in ONNX Runtime, without importing torch once
the export is cached. The backend is recorded in the index beside the model name: vectors from
another backend are a different space (int8 moves them slightly), so mixing them needs a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rag.embed.base import Embedder, token_batches
from rag.embed.onnx_backend import OnnxEmbedder
from rag.embed.torch_backend import SentenceTransformerEmbedder

# The default on a CPU is the fastest backend whose dense nDCG@10 stays within 0.005 of torch fp32
# on SQuAD dev and HaluEval dev (benchmarks/embedders.py; figures in docs/benchmarks.md).
DEFAULT_BACKEND = "onnx-int8"
GPU_BACKEND = "torch"
NVIDIA_DEVICE = Path("/dev/nvidiactl")  # present where an NVIDIA driver is loaded
BACKENDS: dict[str, Callable[[str], Embedder]] = {
    "torch": SentenceTransformerEmbedder,
    "onnx-fp32": lambda name: OnnxEmbedder(name, quantized=False),
    "onnx-int8": lambda name: OnnxEmbedder(name, quantized=True),
}


def default_backend() -> str:
    """torch on a machine with an NVIDIA GPU, else DEFAULT_BACKEND. Checked through the driver's
    device file, because asking torch would import it (seconds) on every start."""
    return GPU_BACKEND if NVIDIA_DEVICE.exists() else DEFAULT_BACKEND


def make_embedder(name: str, backend: str | None = None) -> Embedder:
    """The embedder for model `name` on `backend` (one of BACKENDS; None: `default_backend()`)."""
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[backend](name)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "GPU_BACKEND",
    "Embedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "default_backend",
    "make_embedder",
    "token_batches",
]
