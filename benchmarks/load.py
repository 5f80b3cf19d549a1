"""Concurrent load against the Python API: N client threads share one Index (as a server would),
each asking questions in a loop; throughput, latency percentiles and errors per N.

    python benchmarks/load.py [--index indexes/default] [--clients 1 2 4 8] [--seconds 20]
                              [--answers --answer-clients 1 2 --answer-questions 4] [--json]

Retrieval: a whole hybrid search (query embedding, FAISS, BM25, fusion, SQLite) per question.
Answers (--answers): retrieve, generate with the in-process model, verify every sentence.
Targets: zero errors; retrieval p95 within 3x of p50 at 8 clients.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import realdata  # noqa: F401 - puts the project on sys.path
from search import QUERIES

from rag import Index, verify
from rag.generate import backends
from rag.pipeline import Pipeline


def run(clients: int, call: Callable[[str], object], stop: Callable[[int], bool]) -> dict[str, Any]:
    """`clients` threads calling `call` on shuffled QUERIES until `stop(calls so far)`; their figures."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def client(seed: int) -> None:
        questions = random.Random(seed).sample(QUERIES, len(QUERIES))
        n = 0
        while True:
            with lock:
                if stop(len(latencies) + sum(errors.values())):
                    return
            start = time.perf_counter()
            try:
                call(questions[n % len(questions)])
            except Exception as exc:  # counted and reported, the load goes on
                with lock:
                    errors[f"{type(exc).__name__}: {exc}"] += 1
            else:
                with lock:
                    latencies.append(time.perf_counter() - start)
            n += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0.0] * 99
    return {"clients": clients, "requests": len(latencies), "errors": sum(errors.values()),
            "error_kinds": dict(errors), "per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
            "p95_over_p50": round(q[94] / q[49], 2) if q[49] else None}


def for_seconds(seconds: float) -> Callable[[int], bool]:
    deadline = time.monotonic() + seconds
    return lambda _: time.monotonic() >= deadline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=Path("indexes/default"))
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=20.0, help="per retrieval concurrency level")
    parser.add_argument("--answers", action="store_true", help="also full answers (generate and verify)")
    parser.add_argument("--answer-clients", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--answer-questions", type=int, default=4, help="answers per concurrency level")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    index = Index(args.index)
    index.search("warm up", k=5)  # the model and the snapshot, loaded once as a server would
    report: dict[str, Any] = {"index": str(args.index), "chunks": index.info().chunks, "retrieval": []}
    for clients in args.clients:
        report["retrieval"].append(run(clients, lambda q: index.search(q, k=5), for_seconds(args.seconds)))
        _show("retrieval", report["retrieval"][-1], args.json)
    if args.answers:
        answerer = Pipeline.build(index, backends.make()).answerer
        checker = verify.load()
        verify.check(answerer.ask(QUERIES[0]), checker)  # warm up both models
        report["answers"] = []
        for clients in args.answer_clients:
            report["answers"].append(run(clients, lambda q: verify.check(answerer.ask(q), checker),
                                         lambda done: done >= args.answer_questions))
            _show("answers", report["answers"][-1], args.json)
    if args.json:
        print(json.dumps(report, indent=1))


def _show(kind: str, row: dict[str, Any], quiet: bool) -> None:
    if not quiet:
        print(f"{kind:>9} {row['clients']:>2} clients: {row['requests']:>5} done, {row['errors']} errors, "
              f"{row['per_s']:>7.2f}/s, p50 {row['p50_ms']:>7.1f} ms, p95 {row['p95_ms']:>7.1f} ms, "
              f"p99 {row['p99_ms']:>7.1f} ms (p95/p50 {row['p95_over_p50']})", flush=True)
        for kind_, count in row["error_kinds"].items():
            print(f"           {count} x {kind_}")


if __name__ == "__main__":
    main()
