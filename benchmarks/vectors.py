"""Approximate (IVF-Flat) against exact search on real MiniLM embeddings: recall@10 and latency.

    python benchmarks/vectors.py --halueval ../shared/data/halueval-qa-train.jsonl \
        --squad ../shared/data/squad-dev-v1.1.json [--cache .cache/vectors] [--json]

Embeds the texts once (cached as .npy), holds out 1,000 questions as queries, indexes the rest
both ways with the project's own builders, and reports for several nprobe values the recall@10
of IVF against exact search and single-query latency with one thread, side by side in one run.
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

import numpy as np

from rag import threads, vectors
from rag.embed import SentenceTransformerEmbedder

N_QUERIES = 1000
NPROBES = (8, 16, 32, 64, 128)


def texts(halueval: Path, squad: Path) -> tuple[list[str], list[str]]:
    """(questions, passages) from both files."""
    rows = [json.loads(line) for line in halueval.read_text().splitlines() if line.strip()]
    questions = [r["question"] for r in rows]
    passages = list(dict.fromkeys(r["knowledge"] for r in rows))
    for article in json.loads(squad.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            passages.append(paragraph["context"])
            questions += [qa["question"] for qa in paragraph["qas"]]
    return questions, passages


def embedded(name: str, items: list[str], cache: Path) -> np.ndarray:
    path = cache / f"{name}-{len(items)}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    threads.use(threads.available())
    out = SentenceTransformerEmbedder(batch_size=32).embed(items)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out, allow_pickle=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--halueval", type=Path, required=True)
    parser.add_argument("--squad", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(".cache/vectors"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    questions, passages = texts(args.halueval, args.squad)
    q_vecs, p_vecs = embedded("questions", questions, args.cache), embedded("passages", passages, args.cache)
    order = np.random.default_rng(0).permutation(len(q_vecs))
    queries = q_vecs[order[:N_QUERIES]]
    base = np.concatenate([p_vecs, q_vecs[order[N_QUERIES:]]])
    ids = np.arange(len(base), dtype=np.int64)
    threads.use(1)
    exact = vectors.build(vectors.FLAT, base.shape[1], ids, base)
    start = time.perf_counter()
    ivf = vectors.build(vectors.IVF, base.shape[1], ids, base)
    build_s = time.perf_counter() - start
    truth, exact_ms = _search_all(exact, queries)
    result = {"vectors": len(base), "queries": N_QUERIES, "nlist": vectors.faiss.extract_index_ivf(ivf).nlist,
              "default_nprobe": vectors.default_nprobe(ivf), "ivf_build_s": round(build_s, 2),
              "exact_p50_ms": exact_ms, "ivf": {}}
    for nprobe in sorted({*NPROBES, vectors.default_nprobe(ivf)}):
        vectors.set_nprobe(ivf, nprobe)
        found, ms = _search_all(ivf, queries)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        result["ivf"][nprobe] = {"recall@10": round(float(recall), 4), "p50_ms": ms}  # type: ignore[index]
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['vectors']} real MiniLM vectors, {N_QUERIES} held-out questions, IVF nlist {result['nlist']} "
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
