"""Past one machine's memory: IVF-PQ with exact re-ranking, and IndexShards built in parallel, at
1M chunk-sized (384-dim MiniLM) vectors, side by side with exact search in one run.

    python benchmarks/scale.py --data ../shared/data [--total 1000000] [--shards 4] [--queries 200] [--json]

Vectors: the ~100k real MiniLM vectors of benchmarks/realdata.py, each with noisy copies (Gaussian
noise, renormalised: cosine ~0.93 to the original) up to --total, so every vector is distinct
and neighbourhoods are crowded as in a large corpus. Queries: held-out real questions. Truth:
exact inner-product search. Reported per index: build seconds, bytes in RAM (the serialised
index), recall@10 against exact, and single-query latency with one thread (p50/p95). The exact
vectors for re-ranking live in a memory-mapped file on disk, read only for the candidates.

The last row is the same IVF-PQ as an index snapshot (`rag ingest --index-type ivfpq`): built
through the store (one chunk row per vector), its exact vectors in the snapshot's SQLite, and
measured in a fresh process that opens it as a reader does: the resident memory it adds is
what a reader of such an index needs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import realdata  # before rag: puts the project on sys.path

from rag import store, threads, vectors

WORK = realdata.ROOT / ".cache" / "scale"
NOISE = 0.02  # per dimension: |noise| ~0.39, cosine to the original ~0.93


def synthetic(real: np.ndarray, total: int, seed: int = 0) -> np.ndarray:
    """`real` then noisy copies of it, `total` rows, float32, unit length."""
    rng = np.random.default_rng(seed)
    out = np.empty((total, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real[:total]
    for start in range(len(real), total, len(real)):
        n = min(len(real), total - start)
        block = real[:n] + rng.normal(0, NOISE, size=(n, real.shape[1])).astype(np.float32)
        out[start: start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def latency(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> dict[str, float]:
    threads.use(1)
    times = []
    for query in queries:
        start = time.perf_counter()
        search(query[None, :])
        times.append((time.perf_counter() - start) * 1000)
    threads.use(threads.available())
    q = statistics.quantiles(times, n=20, method="inclusive")
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(q[18], 2)}


def measure(name: str, built: tuple[faiss.Index, float], search: Callable[[faiss.Index, np.ndarray], np.ndarray],
            queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    index, seconds = built
    found = search(index, queries)
    row = {"index": name, "build_s": round(seconds, 1), "ram_mb": round(_bytes(index) / 2**20, 1),
           "recall_at_10": round(realdata.recall_at_10(found, truth), 3),
           **latency(lambda q: search(index, q), queries)}
    print(f"{name:<34} build {row['build_s']:>7.1f} s  RAM {row['ram_mb']:>8.1f} MB  recall@10 "
          f"{row['recall_at_10']:.3f}  p50 {row['p50_ms']:>7.2f} ms  p95 {row['p95_ms']:>7.2f} ms", flush=True)
    return row


def _bytes(index: faiss.Index) -> int:
    if isinstance(index, faiss.IndexShards):
        shards: Any = index
        return sum(_bytes(faiss.downcast_index(shards.at(i))) for i in range(shards.count()))
    return int(faiss.serialize_index(index).nbytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--index", type=Path, default=Path("indexes/default"), help="its chunks lead the pool")
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=100, help="re-ranked exactly per query")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    _, real = realdata.pool(args.data, args.index, 100_000)
    _, questions = realdata.queries(args.data)
    queries = np.ascontiguousarray(questions[: args.queries], dtype=np.float32)
    base = synthetic(real, args.total)
    ids = np.arange(len(base), dtype=np.int64)
    WORK.mkdir(parents=True, exist_ok=True)
    on_disk = WORK / f"vectors-{args.total}.npy"
    np.save(on_disk, base)
    exact = np.load(on_disk, mmap_mode="r")  # what re-ranking reads: the candidates' rows only
    threads.use(threads.available())
    exact_index = _timed(lambda: _flat(base))
    truth = exact_index[0].search(queries, 10)[1]  # the exact index is also the first row measured
    dim, k, c = base.shape[1], 10, args.candidates

    def raw(index: faiss.Index, q: np.ndarray) -> np.ndarray:
        return index.search(q, k)[1]

    def refined(index: faiss.Index, q: np.ndarray) -> np.ndarray:
        return vectors.search_refined(index, exact.__getitem__, q, k, c)[1]

    ivfpq = _timed(lambda: vectors.build_ivfpq(dim, ids, base))
    rows = [
        measure("exact (flat)", exact_index, raw, queries, truth),
        measure("IVF-Flat (the default past 100k)", _timed(lambda: _ivf_flat(dim, ids, base)), raw, queries, truth),
        measure("IVF-PQ48", ivfpq, raw, queries, truth),
        measure(f"IVF-PQ48 + exact re-rank of {c}", ivfpq, refined, queries, truth),
        measure(f"{args.shards} IVF-PQ48 shards + re-rank", _timed(lambda: vectors.build_shards(
            dim, ids, base, args.shards)), refined, queries, truth),
    ]
    rows.append(_snapshot_row(base, queries, truth))
    print(f"(exact vectors for re-ranking: {on_disk.stat().st_size / 2**20:.0f} MB on disk, memory-mapped)")
    if args.json:
        print(json.dumps({"total": args.total, "queries": len(queries), "candidates": c, "rows": rows}, indent=1))


def _snapshot_row(base: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    folder = WORK / "snapshot"
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    _build_snapshot(folder, base)
    seconds = time.perf_counter() - start
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        row = pool.submit(_read_snapshot, folder, queries, truth).result()
    row = {"index": "IVF-PQ48 snapshot, exact vectors in SQLite", "build_s": round(seconds, 1), **row}
    print(f"{row['index']:<34} build {row['build_s']:>7.1f} s  reader RSS +{row['reader_rss_mb']:.0f} MB  "
          f"recall@10 {row['recall_at_10']:.3f}  p50 {row['p50_ms']:>7.2f} ms  p95 {row['p95_ms']:>7.2f} ms  "
          f"on disk {row['disk_mb']:.0f} MB", flush=True)
    return row


def _build_snapshot(folder: Path, base: np.ndarray, per_file: int = 1000) -> None:
    """Chunk ids are given in order from 1: chunk id - 1 is the vector's row in `base`."""
    meta = store.IndexMeta("benchmark", base.shape[1], 256, 200, 32, index_policy="ivfpq")
    with store.write_lock(folder):
        staging = store.Staging(folder, meta, None)
        for first in range(0, len(base), per_file):
            block = base[first: first + per_file]
            chunks = [(n, 0, 1, None, "", 1, f"chunk {first + n}", "chunk") for n in range(len(block))]
            record = store.FileRecord(f"file{first // per_file}.txt", "text", "-", 1, 0, len(block), 0.0)
            staging.add_file(record, "", [], chunks, block)
        staging.publish()


def _read_snapshot(folder: Path, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """In a fresh process: open the snapshot as a reader does, search, and report the resident
    memory it then holds beyond what it held before opening (this script's imports)."""
    before = _rss_mb()
    snap = store.Snapshot.open(folder)
    found = np.array([[i - 1 for i, _ in hits] for hits in snap.search(queries, 10)])
    return {"recall_at_10": round(realdata.recall_at_10(found, truth), 3),
            **latency(lambda q: snap.search(q, 10), queries),
            "reader_rss_mb": round(_rss_mb() - before, 1),
            "disk_mb": round(snap.size_bytes() / 2**20, 1)}


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def _flat(base: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index


def _ivf_flat(dim: int, ids: np.ndarray, base: np.ndarray) -> faiss.Index:
    index = vectors.build(vectors.IVF, dim, ids, base)
    vectors.set_nprobe(index, vectors.default_nprobe(index))  # as a snapshot sets it when it opens
    return index


def _timed(build: Callable[[], faiss.Index]) -> tuple[faiss.Index, float]:
    start = time.perf_counter()
    index = build()
    return index, time.perf_counter() - start


if __name__ == "__main__":
    main()
