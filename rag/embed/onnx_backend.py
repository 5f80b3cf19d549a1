"""The embedder on ONNX Runtime: the sentence-transformers model exported to ONNX once, in fp32
or with int8 dynamic quantization, tokenized by the Rust `tokenizers` library and pooled and
normalized as sentence-transformers does.

The export needs torch and runs once per model (about 20 s); it is cached under
`rag.models.cache_root()` with a checksum beside each file, written atomically, and rebuilt when
the checksum or the file does not match. After that, embedding imports neither torch nor
transformers, so a fresh `rag search` starts in a fraction of the time.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag import models, threads
from rag.embed.base import TOKEN_BUDGET, CountingTokenizer, read_max_seq_length, token_batches
from rag.fsutil import atomic_path, atomic_write_text, exclusive, sha256_file

log = logging.getLogger(__name__)
POOLINGS = ("mean", "cls")  # sentence-transformers pooling modes this backend reproduces
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class OnnxEmbedder:
    """A sentence-transformers model folder run by ONNX Runtime (CPU); `quantized` picks int8."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", quantized: bool = True,
                 token_budget: int = TOKEN_BUDGET) -> None:
        self.name = models.canonical_name(name)
        self.path = models.resolve(name)
        self.quantized = quantized
        self.backend = "onnx-int8" if quantized else "onnx-fp32"
        self.token_budget = token_budget
        self.pooling = _pooling(self.path)
        self._sessions: dict[int, Any] = {}

    @cached_property
    def tokenizer(self) -> CountingTokenizer:
        tokenizer_json = self.path / "tokenizer.json"
        if not tokenizer_json.is_file():
            raise models.ModelNotFoundError(
                f"model {self.name!r} has no tokenizer.json, which the ONNX embedder needs; "
                "use --embedder-backend torch")
        return CountingTokenizer(tokenizer_json)

    @property
    def max_tokens(self) -> int:
        return int(read_max_seq_length(self.path) or 512)

    @cached_property
    def dim(self) -> int:
        return int(json.loads((self.path / "config.json").read_text())["hidden_size"])

    def session(self) -> Any:
        """An ONNX Runtime session with `rag.threads.chosen()` intra-op threads (one per count: a
        session's thread pool is fixed when it is made)."""
        n = threads.chosen()
        if n not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = n
            options.inter_op_num_threads = 1
            self._sessions[n] = ort.InferenceSession(str(self.model_file), options,
                                                     providers=["CPUExecutionProvider"])
        return self._sessions[n]

    @cached_property
    def model_file(self) -> Path:
        """The cached ONNX file, exported on first use."""
        return exported(self.path, self.quantized)

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embeds in length-sorted batches of about `token_budget` padded tokens, returned in input order."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [t[: self.max_tokens - 1] + t[-1:] if len(t) > self.max_tokens else t
               for t in self.tokenizer.encode_batch(texts)]  # truncated, keeping the closing [SEP]
        session = self.session()
        inputs = {i.name for i in session.get_inputs()}
        for rows in token_batches([len(t) for t in ids], self.token_budget):
            out[rows] = self._embed_batch(session, inputs, [ids[i] for i in rows])
            if progress is not None:
                progress(len(rows))
        return out

    def _embed_batch(self, session: Any, inputs: set[str], ids: list[list[int]]) -> np.ndarray:
        width = max(len(t) for t in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = session.run(None, {k: v for k, v in feed.items() if k in inputs})[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return (pooled / norms).astype(np.float32)


def _pooling(path: Path) -> str:
    """The model's pooling mode from 1_Pooling/config.json (mean when the folder has none)."""
    config = next(path.glob("*Pooling/config.json"), None)
    if config is None:
        return "mean"
    settings = json.loads(config.read_text())
    for mode in POOLINGS:
        if settings.get(f"pooling_mode_{mode}_tokens") or settings.get(f"pooling_mode_{mode}_token"):
            return mode
    raise ValueError(f"model {path} pools in a way the ONNX embedder does not reproduce "
                     f"({config}); use --embedder-backend torch")


def exported(model_dir: Path, quantized: bool) -> Path:
    """The cached ONNX export of `model_dir` (int8 when `quantized`), made on first use and
    remade when its checksum does not match (a corrupt or half-copied cache)."""
    weights = next((model_dir / f for f in WEIGHT_FILES if (model_dir / f).is_file()), None)
    if weights is None:
        raise models.ModelNotFoundError(f"model {model_dir} has none of {', '.join(WEIGHT_FILES)} to export")
    folder = models.cache_root() / "onnx" / f"{model_dir.parent.name}-{model_dir.name}-{models.fingerprint(weights)}"
    fp32 = _cached(folder / "model-fp32.onnx", lambda out: _export(model_dir, out))
    if not quantized:
        return fp32
    return _cached(folder / "model-int8.onnx", lambda out: _quantize(fp32, out))


def _cached(path: Path, make: Callable[[Path], None]) -> Path:
    """`path` if its checksum matches, else made again by `make` (into a temporary file, renamed).
    Processes starting together (Ray actors, test workers) wait for the one that exports."""
    checksum = path.with_suffix(".sha256")
    if _matches(path, checksum):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        if _matches(path, checksum):  # made while this process waited
            return path
        if path.exists():
            log.warning("cached ONNX export %s does not match its checksum; exporting it again", path)
        with atomic_path(path) as tmp:
            make(tmp)
        atomic_write_text(checksum, sha256_file(path) + "\n")
    return path


def _matches(path: Path, checksum: Path) -> bool:
    return path.is_file() and checksum.is_file() and checksum.read_text().strip() == sha256_file(path)


def _export(model_dir: Path, out: Path) -> None:
    """The transformer's token states as ONNX (pooling stays in numpy), then fused for ONNX Runtime.

    Exported through torch.onnx's TorchScript exporter with eager attention: its graph is the one
    ONNX Runtime's transformer optimizer recognises (fused attention, layer norms and GELU), which
    with int8 embeds 1.4x faster here than the dynamo exporter's graph (benchmarks/embedders.py).
    Needs torch and onnx, only this once."""
    import torch
    from transformers import AutoConfig, AutoModel

    log.warning("exporting embedder %s to ONNX once (about 10 s)", model_dir)
    config = AutoConfig.from_pretrained(str(model_dir))
    with models.quiet_loading(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _token_states(AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval())
        names = ["input_ids", "attention_mask", "token_type_ids"]
        example = torch.ones((2, 8), dtype=torch.long)
        raw = out.with_name(out.name + ".raw")
        try:
            torch.onnx.export(model, (example, example, torch.zeros_like(example)), str(raw), input_names=names,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
            _optimize(raw, out, config)
        finally:
            raw.unlink(missing_ok=True)


def _token_states(model: Any) -> Any:
    """`model` as a module of three positional inputs returning its last hidden states (the
    TorchScript exporter passes inputs by position; the model's own forward has more parameters)."""
    import torch

    class TokenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    return TokenStates()


def _optimize(raw: Path, out: Path, config: Any) -> None:
    """ONNX Runtime's offline transformer fusions where it knows the architecture, else the graph as is."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    if config.model_type not in MODEL_TYPES:
        raw.replace(out)
        return
    optimized = optimize_model(str(raw), model_type=config.model_type, num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
    optimized.save_model_to_file(str(out))


def _quantize(fp32: Path, out: Path) -> None:
    """int8 weights, one scale per output channel (per-tensor scales lose too much: cosine with
    fp32 falls to 0.78 on some chunks, against 0.98 per channel)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's "consider pre-processing" advice on the root logger
    try:
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops lack shapes
    finally:
        root.setLevel(level)
