"""Choose the fusion constants on a tuning set, never on the evaluation sets.

    python benchmarks/fusion_sweep.py --dataset ../shared/data/halueval-qa-train.jsonl [--format halueval]

Runs dense and BM25 once per query, then fuses their rankings offline for a grid of RRF
constants and BM25/dense weight ratios, and prints nDCG@10 and Recall@1/10 for each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm

from rag.evaluation import retrieval as ev
from rag.retrieve import BM25Retriever, DenseRetriever, rrf

DEPTH = 60
GRID = [(k, w) for k in (5, 10, 20, 60) for w in (1.0, 1.5, 2.0, 3.0)]  # (rrf k, bm25 weight / dense weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--format", default="halueval", choices=["halueval", "beir", "squad"])
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    dataset = ev.load(args.format, args.dataset)
    with tempfile.TemporaryDirectory() as tmp:
        index, by_path = ev.build_index(dataset, args.cache or Path(tmp))
        dense, bm25 = index.retriever("dense"), index.retriever("bm25")
        assert isinstance(dense, DenseRetriever) and isinstance(bm25, BM25Retriever)
        runs = {qid: ([c for c, _ in dense.ranked(text, DEPTH)], [c for c, _ in bm25.ranked(text, DEPTH)])
                for qid, text in tqdm(dataset.queries.items(), desc="rank", unit="query")}
        docs = {r.id: by_path[r.path] for r in index.snapshot().chunks([c for d, b in runs.values() for c in d + b])}
    print(f"{dataset.name}: {len(dataset.corpus)} documents, {len(dataset.queries)} queries")
    print("| fusion | ndcg@10 | recall@1 | recall@10 |\n| --- | ---: | ---: | ---: |")
    rows: list[tuple[str, Callable[[list[int], list[int]], list[int]]]] = [
        ("dense", lambda d, b: d), ("bm25", lambda d, b: b)]
    rows += [(f"rrf k={k} bm25 weight {w}", partial(_fused, k=k, bm25_weight=w)) for k, w in GRID]
    for name, fuse in rows:
        scores = [ev.score_query(list(dict.fromkeys(docs[c] for c in fuse(d, b))), dataset.qrels[qid])
                  for qid, (d, b) in runs.items()]
        mean = {m: sum(s[m] for s in scores) / len(scores) for m in ("ndcg@10", "recall@1", "recall@10")}
        print(f"| {name} | {mean['ndcg@10']:.4f} | {mean['recall@1']:.4f} | {mean['recall@10']:.4f} |")


def _fused(dense: list[int], bm25: list[int], k: int, bm25_weight: float) -> list[int]:
    return [c for c, _ in rrf({"dense": dense, "bm25": bm25}, {"dense": 1.0, "bm25": bm25_weight}, k)]


if __name__ == "__main__":
    main()
