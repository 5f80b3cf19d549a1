"""Train a cross-encoder reranker from the packaged MiniLM body on HaluEval question-passage groups.

No cross-encoder weights come in any installable package, so the project makes its own:
each training question is paired with its own knowledge text (the positive) and with other
records' knowledge that BM25 ranks high for it (hard negatives), and the model learns to put
the positive first (softmax cross-entropy over each group). Word embeddings stay frozen, so
the saved weights (everything else, in float16) stay under 25 MB; `rag.crossencoder` loads them
on top of the base model. The last `dev_rows` rows are never trained on.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag import crossencoder, lexical, models
from rag.fsutil import read_jsonl
from rag.rerank import SPEC
from rag.training import loop

# Tokens a trained reranker reads when scoring (training reads `max_length`, HaluEval being short).
SCORE_MAX_LENGTH = 256


@dataclass(frozen=True)
class TrainConfig:
    base: str = "all-MiniLM-L6-v2"
    dev_rows: int = 1000  # the last rows of the file: the project's dev split, never trained on
    limit: int | None = None  # train on the first `limit` questions only
    negatives: int = 3  # hard negatives per question
    epochs: int = 1
    batch_size: int = 8  # questions per step (each with its positive and negatives)
    learning_rate: float = 5e-5
    warmup: float = 0.1
    max_length: int = 128  # question + passage tokens while training (HaluEval knowledge is ~75)
    seed: int = 0
    threads: int | None = None  # torch threads; None: every core


@dataclass(frozen=True)
class Group:
    question: str
    passages: list[str]  # the positive first, then hard negatives


def training_groups(path: Path, config: TrainConfig) -> list[Group]:
    """One group per training question: its knowledge, then the best BM25 matches among the
    other training records' knowledge (never a text equal to its own)."""
    rows = read_jsonl(path, ("question", "knowledge"))
    if len(rows) <= config.dev_rows:
        raise ValueError(f"{path}: {len(rows)} rows, need more than the {config.dev_rows} kept for dev")
    rows = rows[: len(rows) - config.dev_rows][: config.limit]
    passages = list(dict.fromkeys(r["knowledge"] for r in rows))
    bm25 = lexical.fit(lexical.terms(passages))
    found = lexical.top(bm25, [r["question"] for r in rows], config.negatives + 5, len(passages))
    groups = []
    for row, ranked in zip(rows, found, strict=True):
        negatives = [passages[i] for i in ranked if passages[i] != row["knowledge"]][: config.negatives]
        if len(negatives) == config.negatives:
            groups.append(Group(row["question"], [row["knowledge"], *negatives]))
    return groups


def train(data: Path, out: Path, config: TrainConfig = TrainConfig(),
          progress: loop.Progress | None = None) -> dict[str, object]:
    """Fine-tune and write `out` (weights + reranker.json). Returns what was recorded."""
    loop.seed_and_threads(config.seed, config.threads)
    groups = training_groups(data, config)
    tokenizer, model = crossencoder.trainable(config.base)
    start = time.perf_counter()
    steps, final = loop.fit(model, groups, lambda batch: _group_loss(model, tokenizer, batch, config.max_length),
                            epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                            warmup=config.warmup, seed=config.seed, first_loss=math.log(1 + config.negatives),
                            progress=progress)
    record = {"base": models.canonical_name(config.base), "max_length": SCORE_MAX_LENGTH, "config": asdict(config),
              "data": str(data), "groups": len(groups), "steps": steps, "final_loss": round(final, 4),
              "train_s": round(time.perf_counter() - start, 1)}
    crossencoder.save(model, out, SPEC, record)
    return record


def _group_loss(model: Any, tokenizer: Any, batch: list[Group], max_length: int) -> Any:
    """Softmax cross-entropy with the positive (index 0 of every group) as the target."""
    import torch

    questions = [g.question for g in batch for _ in g.passages]
    passages = [p for g in batch for p in g.passages]
    encoded = tokenizer(questions, passages, truncation="only_second", max_length=max_length, padding=True,
                        return_tensors="pt")
    logits = model(**encoded).logits.view(len(batch), -1)
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
