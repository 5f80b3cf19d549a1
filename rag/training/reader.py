"""Train the extractive reader: a span head on the packaged MiniLM body, from HaluEval QA rows.

Every training row whose right answer occurs in its knowledge text (about 95 % of them) gives
a positive: the question with its knowledge, the answer's first occurrence as the target span.
Each row also gives `negatives` passages from other rows that BM25 ranks high for its
question and that do not contain the answer; their target is the [CLS] token ("no answer
here"), so the reader learns to tell the passage that answers from the ones on the same topic.
The last `dev_rows` rows are never trained on: the reader's dev figures come from them.
SQuAD and VitaminC are evaluation-only here and never read. `tables` adds synthetic table
questions (rag.training.tables), read with their heading path as `rag ask` reads them; `init`
starts from a trained reader instead of the bare MiniLM.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag import crossencoder, lexical, models, reader
from rag.fsutil import read_jsonl
from rag.tables import linearize
from rag.training import loop, tables


@dataclass(frozen=True)
class ReaderConfig:
    base: str = "all-MiniLM-L6-v2"
    dev_rows: int = 1000  # the last rows of the file: never trained on
    limit: int | None = None  # train on the first `limit` rows only
    negatives: int = 1  # distractor passages per row
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup: float = 0.1
    max_length: int = 256  # question + passage tokens; longer passages are read in windows
    stride: int = 64
    tables: int = 0  # synthetic table questions added to the rows' examples
    init: str | None = None  # a reader folder to start from (default: the bare base model)
    seed: int = 0
    threads: int | None = None


@dataclass(frozen=True)
class Example:
    question: str
    passage: str
    start: int  # the answer's character span in `passage`; -1, -1 when the passage does not hold it
    end: int
    context: str = ""  # the heading path read before the passage


def split(path: Path, config: ReaderConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, dev rows) in file order, dev last."""
    rows = read_jsonl(path, ("knowledge", "question", "right_answer"))
    if len(rows) <= config.dev_rows:
        raise ValueError(f"{path}: {len(rows)} rows, need more than the {config.dev_rows} kept for dev")
    return rows[: len(rows) - config.dev_rows][: config.limit], rows[len(rows) - config.dev_rows:]


def examples(rows: list[dict[str, Any]], negatives: int, seed: int = 0) -> list[Example]:
    """A positive for each row whose answer its knowledge holds, and `negatives` BM25 distractors
    for every row, shuffled with `seed`."""
    knowledge = list(dict.fromkeys(r["knowledge"] for r in rows))
    bm25 = lexical.fit(lexical.terms(knowledge))
    nearest = lexical.top(bm25, [r["question"] for r in rows], negatives + 4, len(knowledge))
    out = []
    for row, near in zip(rows, nearest, strict=True):
        answer = row["right_answer"].strip()
        at = row["knowledge"].lower().find(answer.lower()) if answer else -1
        if at >= 0:
            out.append(Example(row["question"], row["knowledge"], at, at + len(answer)))
        others = [knowledge[i] for i in near if knowledge[i] != row["knowledge"]
                  and (not answer or answer.lower() not in knowledge[i].lower())]
        out += [Example(row["question"], text, -1, -1) for text in others[:negatives]]
    random.Random(seed).shuffle(out)
    return out


def with_tables(items: list[Example], n: int, seed: int) -> list[Example]:
    """`items` and `n` synthetic table questions, shuffled together."""
    out = items + [Example(q.question, q.passage, q.start, q.end, q.context) for q in tables.questions(n, seed)]
    random.Random(seed).shuffle(out)
    return out


def targets(windows: list[reader.Window], answers: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """The start and end token of each window's answer ((start, end) characters per passage,
    -1 for none), 0 ([CLS]) where the window does not hold the whole answer."""
    starts, ends = [], []
    for window in windows:
        first, last = answers[window.passage]
        inside = [i for i, o in enumerate(window.offsets) if o is not None and o[0] < last and o[1] > first]
        whole = bool(inside) and window.offsets[inside[0]][0] <= first  # type: ignore[index]
        whole = whole and window.offsets[inside[-1]][1] >= last  # type: ignore[index]
        starts.append(inside[0] if whole else 0)
        ends.append(inside[-1] if whole else 0)
    return starts, ends


def read_as_asked(example: Example) -> tuple[str, tuple[int, int]]:
    """The passage as the reader reads it at answer time (tables linearised, heading path first)
    and the answer's span in that text."""
    view = linearize(example.passage, example.context)
    span = view.position(example.start, example.end) if example.start >= 0 else None
    return view.text, span or (-1, -1)


def _loss(model: Any, tokenizer: Any, batch: list[Example], config: ReaderConfig) -> Any:
    import torch

    texts, answers = zip(*(read_as_asked(e) for e in batch), strict=True)
    encoded, windows = reader.encode(tokenizer, [e.question for e in batch], list(texts),
                                     config.max_length, config.stride)
    starts, ends = targets(windows, list(answers))
    return model(**encoded, start_positions=torch.tensor(starts), end_positions=torch.tensor(ends)).loss


def train(data: Path, out: Path, config: ReaderConfig = ReaderConfig(),
          progress: loop.Progress | None = None) -> dict[str, object]:
    """Fine-tune and write `out` (weights + reader.json); resumes from out/checkpoints when a
    stopped run left one there."""
    loop.seed_and_threads(config.seed, config.threads)
    train_rows, _ = split(data, config)
    items = with_tables(examples(train_rows, config.negatives, config.seed), config.tables, config.seed)
    tokenizer, model = reader.trainable(config.base)
    if config.init:
        crossencoder.load_weights(model, Path(config.init), config.base)
    start = time.perf_counter()
    steps, final = loop.fit(model, items, lambda batch: _loss(model, tokenizer, batch, config),
                            epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                            warmup=config.warmup, seed=config.seed, first_loss=math.log(config.max_length),
                            progress=progress, checkpoints=out / "checkpoints",
                            length=lambda e: len(e.question) + len(e.passage))
    record = {"base": models.canonical_name(config.base), "max_length": config.max_length, "config": asdict(config),
              "data": str(data), "rows": len(train_rows), "positives": sum(e.start >= 0 for e in items),
              "negatives": sum(e.start < 0 for e in items),
              "tables": config.tables, "steps": steps, "final_loss": round(final, 4),
              "train_s": round(time.perf_counter() - start, 1)}
    crossencoder.save(model, out, reader.SPEC, record)
    return record
