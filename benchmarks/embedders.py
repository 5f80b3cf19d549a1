"""The embedder backends side by side: speed, agreement with torch fp32, and retrieval quality.

    python benchmarks/embedders.py [--corpus corpus] [--data ../shared/data] [--json]

1. speed: chunks/s embedding a fixed sample of 800 of the demo corpus's chunks (the texts
   `rag ingest` embeds), per backend, per token budget, with every core; and one query's
   latency with one thread
2. agreement: cosine of each backend's vectors with torch fp32's on that sample (min, 1st
   percentile, mean)
3. quality: dense nDCG@10 on SQuAD dev (all of it) and on HaluEval dev (the last 1,000 rows),
   each backend indexing the same documents through the normal ingest pipeline

The default backend (rag.embed.DEFAULT_BACKEND) must be the fastest whose nDCG@10 is within
0.005 of torch on both sets. Indexes are kept under .cache/embedders, so a rerun only searches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest import embedded_texts  # noqa: E402  (benchmarks/ingest.py)

from rag import metrics, threads  # noqa: E402
from rag.embed import BACKENDS, make_embedder  # noqa: E402
from rag.evaluation import retrieval  # noqa: E402
from rag.ingest.chunker import ChunkConfig, Chunker  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
BUDGETS = (2048, 4096, 8192)
SAMPLE = 800
WORK = REPO / ".cache" / "embedders"
QUERY = "How do I create a virtual environment?"


def speed_and_agreement(texts: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    reference = None
    for backend in BACKENDS:
        embedder = make_embedder(MODEL, backend)
        threads.use(threads.available())
        embedder.embed(texts[:16])  # loads (and exports once) outside the timing
        row: dict[str, float] = {}
        for budget in BUDGETS:
            embedder.token_budget = budget  # type: ignore[attr-defined]
            start = time.perf_counter()
            vectors = embedder.embed(texts)
            row[f"chunks_per_s@{budget}"] = round(len(texts) / (time.perf_counter() - start), 1)
        threads.use(1)
        embedder.embed([QUERY])
        times = []
        for _ in range(50):
            start = time.perf_counter()
            embedder.embed([QUERY])
            times.append(1000 * (time.perf_counter() - start))
        row["query_p50_ms"] = metrics.percentile(times, 50, 2) or 0.0
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(axis=1)
        row |= {"cosine_min": round(float(cosine.min()), 4), "cosine_p1": round(float(np.percentile(cosine, 1)), 4),
                "cosine_mean": round(float(cosine.mean()), 4)}
        out[backend] = row
        print(backend, row, file=sys.stderr, flush=True)
    return out


def quality(data: Path) -> dict[str, dict[str, float]]:
    sets = {"squad-dev": retrieval.load("squad", data / "squad-dev-v1.1.json"),
            "halueval-dev": retrieval.load("halueval", data / "halueval-qa-train.jsonl")}
    out: dict[str, dict[str, float]] = {}
    for name, dataset in sets.items():
        for backend in BACKENDS:
            index, by_path = retrieval.build_index(dataset, WORK / f"{name}-{backend}",
                                                   embedder=make_embedder(MODEL, backend), progress=False)
            scores = retrieval.evaluate(index, by_path, dataset, ["dense"], progress=False)["dense"]
            out.setdefault(name, {})[backend] = scores["ndcg@10"]
            print(name, backend, scores["ndcg@10"], file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--skip-quality", action="store_true", help="speed and agreement only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counter = make_embedder(MODEL, "torch")  # its tokenizer and limit: the model itself never loads here
    texts = embedded_texts(args.corpus, Chunker(counter.tokenizer, counter.max_tokens, ChunkConfig()))
    texts = [texts[i] for i in sorted(np.random.default_rng(0).choice(len(texts), SAMPLE, replace=False))]
    result: dict[str, object] = {"chunks": len(texts), "cores": threads.available(),
                                 "backends": speed_and_agreement(texts)}
    if not args.skip_quality:
        result["ndcg@10"] = quality(args.data)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{len(texts)} chunks sampled from the demo corpus, {threads.available()} cores")
    for backend, row in result["backends"].items():  # type: ignore[attr-defined]
        print(f"{backend:10s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    for name, scores in result.get("ndcg@10", {}).items():  # type: ignore[attr-defined]
        base = scores["torch"]
        print(f"{name}: " + "  ".join(f"{b} {s:.4f} ({s - base:+.4f})" for b, s in scores.items()))


if __name__ == "__main__":
    main()
