"""Answer latency of the default generator on the demo corpus: first token, total, tokens/s, memory.

    python benchmarks/answer.py [--index indexes/default] [--k 5] [--json]

Runs a fixed list of questions through `Answerer` (hybrid retrieval, k passages) with the
in-process generator, one model load per process (not counted), and reports medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import Index
from rag.answer import Answer, AnswerConfig, Answerer
from rag.generate.backends import TransformersGenerator

QUESTIONS = [
    "How long do transfers to another bank take?", "What is the fee for a paper statement?",
    "How do I create a virtual environment?", "What does the shopt builtin do?",
    "Can I add an authorized user to a savings account?", "How are list comprehensions written?",
    "What is the daily limit for QR transfers?", "How does brace expansion work?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="indexes/default")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    generator = TransformersGenerator()
    start = time.perf_counter()
    _ = generator.model, generator.tokenizer
    load_s = time.perf_counter() - start
    answerer = Answerer(Index(args.index), generator, AnswerConfig(k=args.k))
    answerer.ask("warm up")
    rows = []
    for question in QUESTIONS:
        pieces, started = 0, time.perf_counter()
        for item in answerer.stream(question):
            if isinstance(item, Answer):
                answer = item
            else:
                pieces += 1
        tokens = len(generator.tokenizer(answer.answer)["input_ids"])
        gen_s = answer.timings["total_s"] - answer.timings["first_token_s"]
        rows.append({"first_token_s": answer.timings["first_token_s"], "total_s": time.perf_counter() - started,
                     "tokens": tokens, "tokens_per_s": tokens / gen_s if gen_s > 0 else 0.0,
                     "abstained": answer.abstained})
    result = {"model": generator.name, "device": generator.device, "k": args.k, "questions": len(rows),
              "load_s": round(load_s, 2),
              **{f"median_{key}": round(statistics.median(r[key] for r in rows), 3)
                 for key in ("first_token_s", "total_s", "tokens", "tokens_per_s")},
              "abstained": sum(r["abstained"] for r in rows),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(result, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
