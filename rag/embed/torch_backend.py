"""The sentence-transformers embedder on torch: any model, CPU or GPU."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from rag import models
from rag.embed.base import GPU_TOKEN_BUDGET, TOKEN_BUDGET, load_tokenizer, read_max_seq_length, token_batches


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, found through `rag.models.resolve`.

    The tokenizer loads on its own, and the model only when something is embedded,
    so an ingest with nothing to embed never pays for loading the model.
    """

    backend = "torch"

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str | None = None,
                 token_budget: int | None = None) -> None:
        self.name = models.canonical_name(name)
        self.path = models.resolve(name)
        self.device = device
        self.token_budget = token_budget

    @cached_property
    def tokenizer(self) -> Any:
        return load_tokenizer(self.path)

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
        return int(read_max_seq_length(self.path) or self.model.max_seq_length)

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embeds in length-sorted batches of about `token_budget` padded tokens (by default
        TOKEN_BUDGET, or GPU_TOKEN_BUDGET when the model runs on a GPU), returned in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        lengths = [min(len(self.tokenizer.encode(t)), self.max_tokens) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        budget = self.token_budget or (GPU_TOKEN_BUDGET if self.model.device.type == "cuda" else TOKEN_BUDGET)
        for rows in token_batches(lengths, budget):
            out[rows] = self.model.encode([texts[i] for i in rows], batch_size=len(rows),
                                          normalize_embeddings=True, convert_to_numpy=True)
            if progress is not None:
                progress(len(rows))
        return out
