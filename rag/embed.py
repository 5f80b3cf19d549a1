"""Text embedders: a small protocol and the sentence-transformers implementation.

The index stores unit-length float32 vectors, so inner product is cosine similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag import models


class Embedder(Protocol):
    name: str  # recorded in the index; a different name means a different vector space

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...  # input limit including special tokens

    @property
    def tokenizer(self) -> Any: ...  # what the chunker counts tokens with

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        ...


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, found through `rag.models.resolve`.

    The tokenizer loads on its own, and the model only when something is embedded,
    so an ingest with nothing to embed never pays for loading the model.
    """

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str | None = None, batch_size: int = 32) -> None:
        self.name = models.canonical_name(name)
        self.path = models.resolve(name)
        self.device = device
        self.batch_size = batch_size

    @cached_property
    def tokenizer(self) -> Any:
        """For counting tokens. The Rust tokenizer imports in milliseconds where transformers
        takes seconds, which is most of the time of a small incremental ingest."""
        if (self.path / "tokenizer.json").is_file():
            return CountingTokenizer(self.path / "tokenizer.json")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        tokenizer.model_max_length = 1 << 30  # used for counting long texts: no "too long" warnings
        return tokenizer

    @cached_property
    def model(self) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weight-loading bar on every start is noise
        return SentenceTransformer(str(self.path), device=self.device, local_files_only=True)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(_read_max_seq_length(self.path) or self.model.max_seq_length)

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embeds in length-sorted batches (less padding), returned in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(order), self.batch_size):
            rows = order[lo : lo + self.batch_size]
            vectors = self.model.encode([texts[i] for i in rows], batch_size=len(rows),
                                        normalize_embeddings=True, convert_to_numpy=True)
            out[rows] = vectors
            if progress is not None:
                progress(len(rows))
        return out


class CountingTokenizer:
    """A `tokenizers` tokenizer with truncation off (tokenizer.json may set it), so long texts
    are counted in full; offers the two methods the chunker uses."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_truncation()
        self._tok.no_padding()

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return int(self._tok.post_processor.num_special_tokens_to_add(pair)) if self._tok.post_processor else 0


def _read_max_seq_length(path: Path) -> int | None:
    """The limit from sentence_bert_config.json, read without loading the model."""
    import json

    config = path / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        return int(value) if value else None
    return None
