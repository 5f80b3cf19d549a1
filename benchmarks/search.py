"""Single-query latency with 1 and 2 threads, interleaved in one run so noise hits both alike.

    python benchmarks/search.py [--index indexes/default] [--rounds 5] [--json]

Each round runs every query once per thread count, alternating the order between rounds.
Reports p50/p95 of a whole hybrid search (query embedding, FAISS, BM25, fusion, SQLite) per thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import Index

QUERIES = [
    "How long do transfers to another bank take?", "What is the fee for a paper statement?",
    "How do I create a virtual environment?", "What does the shopt builtin do?",
    "Can I add an authorized user to a savings account?", "How are list comprehensions written?",
    "What is the daily limit for QR transfers?", "How does brace expansion work?",
    "Is there a foreign transaction fee on the Diamond Elite card?", "How do I read a file line by line?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="indexes/default")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    index = Index(args.index)
    index.search("warm up", k=5)  # loads the model and the snapshot
    times: dict[int, list[float]] = {1: [], 2: []}
    for round_ in range(args.rounds):
        for n in ((1, 2) if round_ % 2 == 0 else (2, 1)):
            for query in QUERIES:
                start = time.perf_counter()
                index.search(query, k=5, mode="hybrid", n_threads=n)
                times[n].append(time.perf_counter() - start)
    result = {f"{n}_thread{'s' if n > 1 else ''}": {"p50_ms": round(1000 * statistics.median(t), 2),
                                                     "p95_ms": round(1000 * _p95(t), 2), "queries": len(t)}
              for n, t in times.items()}
    print(json.dumps(result, indent=1) if args.json else
          "\n".join(f"{k:>10}: p50 {v['p50_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms over {v['queries']} queries"
                    for k, v in result.items()))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
