"""Calibrate the retrieval threshold below which `rag ask` abstains without generating.

    python benchmarks/abstention.py --data ../shared/data/halueval-qa-train.jsonl [--json]

On the project's HaluEval dev rows (the last 1,000): the knowledge of the first half is
indexed; the first half's questions are answerable, the second half's are not (their
knowledge is absent, though the topics are just as Wikipedia-like). For each question the best
passage's dense cosine is recorded, and the threshold is the highest value that still lets
through 97% of the answerable questions: abstaining wrongly is cheap to notice, but the
generator should get a chance on nearly every answerable question. Prints how many
unanswerable questions that threshold stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from rag.evaluation import retrieval as ev
from rag.fsutil import read_jsonl

KEEP_ANSWERABLE = 0.97


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = read_jsonl(args.data, ("knowledge", "question"))[-1000:]
    half = len(rows) // 2
    corpus = {f"k{i}": r["knowledge"] for i, r in enumerate(rows[:half])}
    data = ev.Dataset("halueval dev", corpus, {}, {})
    with tempfile.TemporaryDirectory() as tmp:
        index, _ = ev.build_index(data, Path(tmp))
        retriever = index.retriever("dense")
        best = [retriever.search(r["question"], 1)[0].score for r in rows]
        index.close()
    answerable, unanswerable = np.array(best[:half]), np.array(best[half:])
    threshold = float(np.quantile(answerable, 1 - KEEP_ANSWERABLE))
    result = {"threshold": round(threshold, 3), "answerable_kept": round(float(np.mean(answerable >= threshold)), 3),
              "unanswerable_stopped": round(float(np.mean(unanswerable < threshold)), 3),
              "answerable_median": round(float(np.median(answerable)), 3),
              "unanswerable_median": round(float(np.median(unanswerable)), 3), "questions": len(rows)}
    print(json.dumps(result, indent=1) if args.json else
          f"threshold {result['threshold']}: keeps {result['answerable_kept']:.1%} of answerable questions, "
          f"stops {result['unanswerable_stopped']:.1%} of unanswerable ones (median best cosine "
          f"{result['answerable_median']} vs {result['unanswerable_median']})")


if __name__ == "__main__":
    main()
