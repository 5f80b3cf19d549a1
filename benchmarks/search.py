"""Search latency: thread counts on the demo index, and scale (10k/100k chunks, 1M vectors).

    python benchmarks/search.py threads [--index indexes/default] [--rounds 5] [--json]
    python benchmarks/search.py scale --data ../shared/data [--sizes 10000 100000] [--million] [--json]
    python benchmarks/search.py cold [--index indexes/default] [--runs 10] [--json]

threads: every query once per thread count per round, alternating the order between rounds,
so noise hits both alike; p50/p95 of a whole hybrid search.

cold: `rag search QUERY` as a fresh process, as a user runs it: wall time p50/p95 over the runs
(interpreter start, imports, model and snapshot load, one hybrid search, printing), then one
run under `python -X importtime`: the slowest top-level imports, and whether torch was imported.

scale: real indexes of 10k and 100k real texts (benchmarks/realdata.py) built by the normal
ingest pipeline, with the texts' embeddings computed once and cached; then the latency of one
hybrid query (query embedding, FAISS, BM25, fusion, SQLite) with one thread, for the exact and
the IVF index, and the IVF's recall@10 against exact search for held-out real questions.
--million adds the dense part alone at 1,000,000 vectors per index type. Only ~100k distinct
real texts exist here (embedding a million on these CPUs would take hours), so the million is
the 100k real vectors repeated ten times: search cost depends on the count and, for IVF, on
how the lists fill, not on which vectors they are. Recall is only measured on distinct vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import realdata  # before rag: puts the project on sys.path
from tqdm import tqdm

from rag import Index, threads, vectors
from rag.embed import SentenceTransformerEmbedder

QUERIES = [
    "How long do transfers to another bank take?", "What is the fee for a paper statement?",
    "How do I create a virtual environment?", "What does the shopt builtin do?",
    "Can I add an authorized user to a savings account?", "How are list comprehensions written?",
    "What is the daily limit for QR transfers?", "How does brace expansion work?",
    "Is there a foreign transaction fee on the Diamond Elite card?", "How do I read a file line by line?",
]
N_TIMED = 200  # held-out questions timed per configuration
WORK = realdata.ROOT / ".cache" / "search-scale"


def cmd_threads(args: argparse.Namespace) -> dict[str, object]:
    index = Index(args.index)
    index.search("warm up", k=5)  # loads the model and the snapshot
    times: dict[int, list[float]] = {1: [], 2: []}
    for round_ in range(args.rounds):
        for n in ((1, 2) if round_ % 2 == 0 else (2, 1)):
            threads.use(n)
            times[n] += _timed(partial(index.search, k=5, mode="hybrid"), QUERIES)
    return {f"{n}_thread{'s' if n > 1 else ''}": _stats(t) for n, t in times.items()}


class Precomputed(SentenceTransformerEmbedder):
    """The MiniLM embedder, answering from precomputed vectors for texts it has seen."""

    def __init__(self, texts: Sequence[str], vecs: np.ndarray) -> None:
        super().__init__()
        self.known = {t: i for i, t in enumerate(texts)}
        self.vecs = vecs
        self.misses = 0

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        missing = [t for t in texts if t not in self.known]
        self.misses += len(missing)
        fresh = dict(zip(missing, super().embed(missing), strict=True)) if missing else {}
        if progress:
            progress(len(texts))
        return np.stack([self.vecs[self.known[t]] if t in self.known else fresh[t] for t in texts])


def build(texts: list[str], vecs: np.ndarray, folder: Path) -> tuple[Index, int]:
    """An index of one file per text (reused when it exists); returns it and the embedding misses."""
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(tqdm(texts, desc=f"write {len(texts)} files", unit="file")):
        path = docs / f"{i:06d}.txt"
        if not path.exists():
            path.write_text(text)
    embedder = Precomputed(texts, vecs)
    index = Index(folder / "index", embedder=embedder)
    index.ingest([docs], index_type="flat")
    return index, embedder.misses


def cmd_scale(args: argparse.Namespace) -> dict[str, object]:
    texts, vecs = realdata.pool(args.data, args.index, max(args.sizes))
    questions, q_vecs = realdata.queries(args.data)
    timed = questions[:N_TIMED]
    result: dict[str, object] = {}
    for size in sorted(args.sizes):
        index, misses = build(texts[:size], vecs[:size], WORK / str(size))
        row: dict[str, object] = {"chunks": index.info().chunks, "embedded_at_build": misses}
        for kind in ("flat", "ivf"):
            index.ingest([WORK / str(size) / "docs"], index_type=kind, progress=False)  # refit only, no embedding
            index.search("warm up", k=5)
            row[kind] = {mode: _stats(_timed(partial(index.search, k=5, mode=mode), timed))
                         for mode in ("hybrid", "dense", "bm25")}
        row["ivf_recall@10"] = _recall(vecs[:size], q_vecs)
        result[f"{size}_chunks"] = row
        index.close()
    if args.million:
        result["1000000_vectors"] = _million(vecs, q_vecs[:N_TIMED])
    return result


def _million(real: np.ndarray, queries: np.ndarray) -> dict[str, object]:
    base = np.tile(real, (-(-1_000_000 // len(real)), 1))[:1_000_000]
    ids = np.arange(len(base), dtype=np.int64)
    threads.use(threads.available())
    out: dict[str, object] = {}
    for kind in (vectors.FLAT, vectors.IVF):
        start = time.perf_counter()
        index = vectors.build(kind, base.shape[1], ids, base)
        build_s = time.perf_counter() - start
        vectors.set_nprobe(index, vectors.default_nprobe(index))
        threads.use(1)
        out[kind] = {**_stats(_timed(partial(_search_one, index), list(queries))),
                     "build_s": round(build_s, 1), "nprobe": vectors.default_nprobe(index)}
        threads.use(threads.available())
        del index
    return out


def _recall(base: np.ndarray, queries: np.ndarray) -> float:
    """Recall@10 of the IVF index (default nprobe) against exact search, on distinct real vectors."""
    ids = np.arange(len(base), dtype=np.int64)
    exact = vectors.build(vectors.FLAT, base.shape[1], ids, base)
    ivf = vectors.build(vectors.IVF, base.shape[1], ids, base)
    vectors.set_nprobe(ivf, vectors.default_nprobe(ivf))
    _, truth = exact.search(queries, 10)
    _, found = ivf.search(queries, 10)
    return round(realdata.recall_at_10(found, truth), 4)


def cmd_cold(args: argparse.Namespace) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(realdata.ROOT)}
    times = []
    for i in range(args.runs + 1):  # the first run warms the page cache and is not counted
        command = [sys.executable, "-m", "rag", "search", QUERIES[i % len(QUERIES)], "--index", str(args.index)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        if i:
            times.append(time.perf_counter() - start)
    traced = subprocess.run([sys.executable, "-X", "importtime", *command[1:]], check=True, capture_output=True,
                            text=True, env=env).stderr
    # Lines read "import time: self | cumulative | name", the name indented two spaces per nesting level.
    rows = [line.split("|") for line in traced.splitlines() if line.startswith("import time:")]
    rows = [row for row in rows if row[1].strip().isdigit()]
    roots = sorted(((int(cum), name.strip()) for _, cum, name in rows if not name.startswith("  ")), reverse=True)
    modules = {name.strip() for _, _, name in rows}
    return {"rag_search": {**_stats(times), "slowest_imports_ms": {n: round(c / 1000) for c, n in roots[:8]},
                           "imports_torch": "torch" in modules}}


def _search_one(index: Any, query: np.ndarray) -> object:
    return index.search(query[None, :], 10)


def _timed(fn: Callable[[object], object], items: Sequence[object]) -> list[float]:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return times


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(1000 * statistics.median(times), 2), "p95_ms": round(1000 * p95, 2), "n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    thread = sub.add_parser("threads")
    thread.add_argument("--index", type=Path, default=Path("indexes/default"))
    thread.add_argument("--rounds", type=int, default=5)
    scale = sub.add_parser("scale")
    scale.add_argument("--data", type=Path, required=True, help="the shared data folder")
    scale.add_argument("--index", type=Path, default=Path("indexes/default"), help="its chunks lead the pool")
    scale.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    scale.add_argument("--million", action="store_true", help="also time dense search over 1M vectors")
    cold = sub.add_parser("cold")
    cold.add_argument("--index", type=Path, default=Path("indexes/default"))
    cold.add_argument("--runs", type=int, default=10)
    for p in (thread, scale, cold):
        p.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"threads": cmd_threads, "scale": cmd_scale, "cold": cmd_cold}[args.what](args)
    print(json.dumps(result, indent=1) if args.json else _text(result))


def _text(result: dict[str, object], indent: str = "") -> str:
    lines = []
    for key, value in result.items():
        if isinstance(value, dict) and "p50_ms" in value:
            extra = "".join(f", {k} {v}" for k, v in value.items() if k not in ("p50_ms", "p95_ms", "n"))
            lines.append(f"{indent}{key}: p50 {value['p50_ms']:.2f} ms, p95 {value['p95_ms']:.2f} ms{extra}")
        elif isinstance(value, dict):
            lines += [f"{indent}{key}:", _text(value, indent + "  ")]
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
