"""Cross-encoders the project trains itself: the packaged MiniLM body plus a folder of trained weights.

No cross-encoder or NLI weights come in any installable package, so the reranker (query,
passage → relevance) and the verifier (passage, claim → support) are both fine-tuned from
the packaged sentence embedder. Their folders hold the trained (non-embedding) weights in
float16, under 25 MB, and a JSON spec naming the base model; `load` puts them back on top of it.
A folder without the spec is taken as a complete sentence-transformers CrossEncoder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag import models
from rag.fsutil import atomic_write_text

WEIGHTS = "model.safetensors"


def load(path: Path, spec_name: str, device: str | None = None) -> Any:
    """A CrossEncoder from a model folder, or from a base model plus the weights `spec_name` describes."""
    from sentence_transformers import CrossEncoder

    spec_file = path / spec_name
    with models.quiet_loading():
        if not spec_file.is_file():
            return CrossEncoder(str(path), device=device)
        spec = json.loads(spec_file.read_text())
        model = CrossEncoder(str(models.resolve(spec["base"])), num_labels=1, max_length=spec["max_length"],
                             device=device)
    load_weights(model.model, path, spec["base"])
    model.eval()
    return model


def load_weights(module: Any, path: Path, base: str) -> None:
    from safetensors.torch import load_file

    state = {name: tensor.float() for name, tensor in load_file(str(path / WEIGHTS)).items()}
    result = module.load_state_dict(state, strict=False)
    untrained = [k for k in result.missing_keys if "embeddings" not in k]
    if result.unexpected_keys or untrained:
        raise ValueError(f"{path}: its weights do not fit base model {base!r} "
                         f"({len(result.unexpected_keys)} unexpected, {len(untrained)} missing)")


def save(model: Any, out: Path, spec_name: str, record: dict[str, object]) -> None:
    """The trained (non-embedding) weights as float16, then the spec that makes the folder loadable."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().to("cpu").half().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    tmp = out / f".{WEIGHTS}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out / WEIGHTS)
    atomic_write_text(out / spec_name, json.dumps(record, indent=1) + "\n")


def trainable(base: str) -> tuple[Any, Any]:
    """Tokenizer and a one-logit sequence classifier on `base`, word embeddings frozen (so the
    saved weights stay small; the classifier head is new, which is the point of training)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = models.resolve(base)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    with models.quiet_loading():
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
    for name, param in model.named_parameters():
        param.requires_grad = "embeddings" not in name
    return tokenizer, model
