"""Real texts and their real MiniLM embeddings for the scale benchmarks (never random vectors).

The pool, in a fixed order: the demo index's chunks (their vectors are read back from the
index), HaluEval knowledge, SQuAD paragraphs, then VitaminC evidence and claims. Questions
from HaluEval and SQuAD are the queries. Embeddings are cached under .cache/vectors by a
hash of the texts, so a rerun embeds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag import threads, vectors
from rag.embed import SentenceTransformerEmbedder
from rag.fsutil import read_jsonl
from rag.store import Snapshot

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "vectors"
N_QUERIES = 1000  # the first questions are queries, never in the pool


def demo_chunks(index: Path) -> tuple[list[str], np.ndarray]:
    """The texts and stored vectors of every chunk of an existing index."""
    snapshot = Snapshot.open(index)
    ids, vecs = vectors.contents(snapshot.vectors.index)
    texts = [c.text for c in snapshot.chunks(ids.tolist())]
    snapshot.close()
    return texts, vecs


def data_texts(shared: Path) -> tuple[list[str], list[str]]:
    """(passages, questions) from the evaluation and training files, deduplicated, in file order;
    passages include the sentences of long paragraphs."""
    rows = read_jsonl(shared / "halueval-qa-train.jsonl")
    passages = [r["knowledge"] for r in rows]
    questions = [r["question"] for r in rows]
    for article in json.loads((shared / "squad-dev-v1.1.json").read_text())["data"]:
        for paragraph in article["paragraphs"]:
            passages.append(paragraph["context"])
            questions += [qa["question"] for qa in paragraph["qas"]]
    for example in json.loads((shared / "vitaminc.json").read_text())["examples"]:
        evidence, _, claim = example["input"].partition("\nClaim: ")
        passages += [evidence, claim]
    long = [p for p in passages if len(p.split()) > 40]  # SQuAD and HaluEval paragraphs: their sentences too
    passages += [s for p in long for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) >= 5]
    return list(dict.fromkeys(passages)), list(dict.fromkeys(questions))


def embedded(texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
    """MiniLM embeddings of `texts`, from the cache when this exact list was embedded before."""
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{key}-{len(texts)}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    threads.use(threads.available())
    out = SentenceTransformerEmbedder().embed(texts, progress)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out, allow_pickle=False)
    return out


def queries(shared: Path) -> tuple[list[str], np.ndarray]:
    """The held-out questions and their vectors."""
    _, questions = data_texts(shared)
    return questions[:N_QUERIES], embedded(questions[:N_QUERIES])


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top 10 (rows of ids) that the approximate search found."""
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def pool(shared: Path, index: Path, size: int, progress: Callable[[int], None] | None = None
         ) -> tuple[list[str], np.ndarray]:
    """The first `size` texts of the pool and their vectors."""
    texts, vecs = demo_chunks(index)
    passages, questions = data_texts(shared)
    seen = set(texts)
    extra = [p for p in passages + questions[N_QUERIES:] if p not in seen][: max(0, size - len(texts))]
    if len(texts) + len(extra) < size:
        raise SystemExit(f"only {len(texts) + len(extra)} real texts available, asked for {size}")
    all_vecs = np.concatenate([vecs, embedded(extra, progress)]) if extra else vecs
    return (texts + extra)[:size], all_vecs[:size]


if __name__ == "__main__":  # warm the cache: python benchmarks/realdata.py ../shared/data indexes/default 110000
    from tqdm import tqdm

    with tqdm(unit="text", desc="embed") as bar:
        got, _ = pool(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), bar.update)
    print(len(got))
