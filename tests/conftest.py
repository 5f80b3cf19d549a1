"""Shared fixtures. Fast tests use FakeEmbedder; end-to-end tests use the real packaged MiniLM."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from rag.generate.backends import Messages, Sampling

# `make test` fuzzes with 250 examples; the everyday loop passes `--hypothesis-profile fast`.
settings.register_profile("full", max_examples=250)
settings.register_profile("fast", max_examples=40)
settings.load_profile("full")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
GOOD = ["sample.txt", "sample.md", "sample.rst", "sample.html", "sample.pdf", "utf16.txt"]
BROKEN = {  # fixture -> words its error message must contain
    "empty.txt": "empty",
    "blank.md": "empty",
    "latin1.txt": "UTF-8",
    "binary.txt": "binary",
    "truncated.pdf": "corrupt",
    "garbage.pdf": "corrupt",
    "encrypted.pdf": "password",
}


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from rag.embed import make_embedder

    return make_embedder("all-MiniLM-L6-v2").tokenizer


class FakeEmbedder:
    """Deterministic hashed bag-of-words vectors with the real MiniLM tokenizer.

    Counts every text it embeds, and can raise after a number of calls to
    simulate a crash in the middle of a build.
    """

    dim = 512
    max_tokens = 256
    backend = "fake"

    def __init__(self, tokenizer: Any, name: str = "fake-hash", fail_on_call: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("simulated crash while embedding")
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        if progress:
            progress(len(texts))
        return out


@pytest.fixture
def fake(tokenizer: Any) -> FakeEmbedder:
    return FakeEmbedder(tokenizer)


@pytest.fixture(scope="session")
def real_embedder() -> Any:
    """The default embedder (its default backend), as `rag ingest` makes it."""
    from rag.embed import make_embedder

    return make_embedder("all-MiniLM-L6-v2")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder holding one good file of each format."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in GOOD:
        shutil.copy(FIXTURES / name, folder / name)
    return folder


@pytest.fixture
def indexed(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> Any:
    """`corpus` ingested with the fake embedder (a rag.Index)."""
    from rag import Index

    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    return index


def rag_env() -> dict[str, str]:
    """Environment for running the `rag` command in a subprocess, offline."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def ingest_command(corpus: Path, index: Path, *options: str) -> list[str]:
    """`rag ingest CORPUS --index INDEX [options]` as a subprocess runs it (with `rag_env()`)."""
    return [sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(index), *options]


def chunk_set(index_dir: Path) -> set[tuple[str, int, int, str]]:
    """(path, start, end, text) of every chunk; also checks FAISS and SQLite agree, no duplicates."""
    from rag import vectors
    from rag.store import Snapshot

    snap = Snapshot.open(index_dir)
    try:
        rows = snap.db.execute("SELECT path, start, end, text FROM chunks").fetchall()
        ids = {r[0] for r in snap.db.execute("SELECT id FROM chunks")}
        assert ids == set(vectors.stored_ids(snap.vectors.index).tolist()), "FAISS and SQLite disagree on chunk ids"
        exact = {r[0] for r in snap.db.execute("SELECT id FROM exact")}
        assert exact == (ids if snap.meta.index_type == vectors.IVFPQ else set()), "exact vectors disagree"
        assert ids == set(snap.lexical.chunk_ids.tolist()), "BM25 and SQLite disagree on chunk ids"
        assert len(rows) == len(set(rows)), "duplicate chunks"
        return {tuple(r) for r in rows}
    finally:
        snap.close()


def write_halueval(path: Path, n: int) -> Path:
    """A HaluEval-format file of n made-up records."""
    topics = ["volcano", "glacier", "harbour", "violin", "comet", "orchard", "lantern", "falcon"]
    with path.open("w") as fh:
        for i in range(n):
            topic = topics[i % len(topics)]
            fh.write(json.dumps({"knowledge": f"The {topic} number {i} was recorded in the year {1800 + i}.",
                                 "question": f"In which year was {topic} number {i} recorded?",
                                 "right_answer": str(1800 + i), "hallucinated_answer": "1066"}) + "\n")
    return path



@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights from a real two-step `rag train reranker` run (1,016 rows: 16 to train on, 1,000 held out)."""
    from rag.training import reranker as training

    work = tmp_path_factory.mktemp("reranker")
    data = write_halueval(work / "qa.jsonl", 1016)
    training.train(data, work / "model", training.TrainConfig(limit=8, batch_size=4, threads=1))
    return work / "model"


@pytest.fixture(scope="session")
def generator() -> Any:
    """A real small generator, for the decoding levers and the fine-tuning recipe: the packaged
    SmolLM2 (converted from GGUF on first use) with its shipped adapter, loaded once."""
    from rag.generate import backends

    return backends.make("SmolLM2-135M-Instruct")


@pytest.fixture(scope="session")
def default_generator() -> Any:
    """The real default generator (the packaged Qwen2.5-Coder-0.5B-Instruct, converted from GGUF on
    first use), loaded once."""
    from rag.generate import backends

    return backends.make()


class Scripted:
    """Streams a fixed reply word by word and records the prompts it was given."""

    name = "scripted"
    markers = True  # the replies cite with [n] themselves

    def __init__(self, reply: str, context_tokens: int = 10_000) -> None:
        self.reply = reply
        self.context_tokens = context_tokens
        self.prompts: list[Messages] = []

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        self.prompts.append(messages)
        for word in self.reply.split(" "):
            yield word + " "
