"""Approximate (IVF-Flat) against exact search on real MiniLM embeddings: recall@10 and latency per nprobe.

    python benchmarks/vectors.py --data ../shared/data [--size 100000] [--json]

Indexes the real texts of benchmarks/realdata.py both ways with the project's own builders and
reports, for several nprobe values, the recall@10 of IVF against exact search for 1,000 held-out
questions and single-query latency with one thread, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import realdata  # before rag: puts the project on sys.path

from rag import threads, vectors

NPROBES = (8, 16, 32, 64, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--index", type=Path, default=Path("indexes/default"), help="its chunks lead the pool")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _, base = realdata.pool(args.data, args.index, args.size)
    _, queries = realdata.queries(args.data)
    ids = np.arange(len(base), dtype=np.int64)
    threads.use(1)
    exact = vectors.build(vectors.FLAT, base.shape[1], ids, base)
    start = time.perf_counter()
    ivf = vectors.build(vectors.IVF, base.shape[1], ids, base)
    build_s = time.perf_counter() - start
    truth, exact_ms = _search_all(exact, queries)
    result = {"vectors": len(base), "queries": len(queries), "nlist": vectors.faiss.extract_index_ivf(ivf).nlist,
              "default_nprobe": vectors.default_nprobe(ivf), "ivf_build_s": round(build_s, 2),
              "exact_p50_ms": exact_ms, "ivf": {}}
    for nprobe in sorted({*NPROBES, vectors.default_nprobe(ivf)}):
        vectors.set_nprobe(ivf, nprobe)
        found, ms = _search_all(ivf, queries)
        recall = realdata.recall_at_10(np.array(found), np.array(truth))
        result["ivf"][nprobe] = {"recall@10": round(recall, 4), "p50_ms": ms}  # type: ignore[index]
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['vectors']} real MiniLM vectors, {result['queries']} held-out questions, "
          f"IVF nlist {result['nlist']} "
          f"(built in {result['ivf_build_s']} s, default nprobe {result['default_nprobe']}); "
          f"exact search p50 {exact_ms} ms")
    for nprobe, row in result["ivf"].items():  # type: ignore[attr-defined]
        print(f"  nprobe {nprobe:>4}: recall@10 {row['recall@10']:.4f}, p50 {row['p50_ms']} ms")


def _search_all(index: object, queries: np.ndarray) -> tuple[list[list[int]], float]:
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q[None, :], 10)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
        found.append(ids[0].tolist())
    return found, round(1000 * statistics.median(times), 3)


if __name__ == "__main__":
    main()
