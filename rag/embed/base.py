"""What every embedder shares: the protocol, token counting, and length-aware batching.

The index stores unit-length float32 vectors, so inner product is cosine similarity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Padded tokens per batch on a CPU. A fixed count of texts wastes work on padding when lengths vary;
# a token budget keeps every batch about the same cost. 2048 (about ten 200-token chunks) measured
# fastest on two cores for both backends (benchmarks/embedders.py); a GPU wants far larger batches.
TOKEN_BUDGET = 2048
GPU_TOKEN_BUDGET = 65536


class Embedder(Protocol):
    name: str  # recorded in the index; a different name means a different vector space
    backend: str  # recorded beside it: torch, onnx-fp32 or onnx-int8 (rag.embed.BACKENDS)

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...  # input limit including special tokens

    @property
    def tokenizer(self) -> Any: ...  # what the chunker counts tokens with

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        ...


def token_batches(lengths: Sequence[int], budget: int = TOKEN_BUDGET) -> list[list[int]]:
    """Indexes of `lengths` sorted longest first and cut into batches whose padded size
    (texts x longest) stays within `budget`; a text longer than the budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for i in order:
        # Sorted longest first, so the batch's first text sets its padded length.
        if batches and (len(batches[-1]) + 1) * max(lengths[batches[-1][0]], 1) <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class CountingTokenizer:
    """A `tokenizers` tokenizer with truncation off (tokenizer.json may set it), so long texts
    are counted in full; offers the two methods the chunker uses. The Rust tokenizer imports in
    milliseconds where transformers takes seconds."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_truncation()
        self._tok.no_padding()

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text with special tokens, untruncated (Rust threads over the batch)."""
        return [list(e.ids) for e in self._tok.encode_batch(list(texts))]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return int(self._tok.post_processor.num_special_tokens_to_add(pair)) if self._tok.post_processor else 0


def load_tokenizer(path: Path) -> Any:
    """The model's tokenizer for counting: the Rust one when tokenizer.json exists, else transformers'."""
    if (path / "tokenizer.json").is_file():
        return CountingTokenizer(path / "tokenizer.json")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    tokenizer.model_max_length = 1 << 30  # used for counting long texts: no "too long" warnings
    return tokenizer


def read_max_seq_length(path: Path) -> int | None:
    """The limit from sentence_bert_config.json, read without loading the model."""
    config = path / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        return int(value) if value else None
    return None
