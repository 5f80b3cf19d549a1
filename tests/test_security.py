"""Nothing read from disk can run code: opening an index and loading every shipped model works
with pickle (and torch.load, and NumPy's pickled arrays) made to fail."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import Index, verify
from rag.reader import Reader
from rag.rerank import CrossEncoderReranker


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a pickle was loaded")


@pytest.mark.slow
def test_indexes_and_models_load_without_any_pickle(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tiny_reranker: Path) -> None:
    import torch

    Index(tmp_path / "idx").ingest([corpus], progress=False)  # writing may use anything; reading may not
    real_np_load = np.load

    def np_load(*args: Any, **kwargs: Any) -> Any:
        assert not kwargs.get("allow_pickle"), "np.load with allow_pickle"
        return real_np_load(*args, **kwargs)

    for target, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(target, name, _refuse)
    monkeypatch.setattr(np, "load", np_load)
    index = Index(tmp_path / "idx")  # a fresh reader: FAISS, SQLite, BM25 and the embedder load here
    for mode in ("dense", "bm25", "hybrid"):
        assert index.search("bees hive", k=3, mode=mode)
    assert CrossEncoderReranker(str(tiny_reranker)).scores("bees", ["bees live in hives"])  # as `rag train` saves
    checker = verify.CrossEncoderVerifier()  # the shipped verifier
    assert checker.scores([("Bees live in hives.", "Where do bees live? In hives.")])
    assert Reader().read("Where do bees live?", ["Bees live in hives."])  # the shipped reader
