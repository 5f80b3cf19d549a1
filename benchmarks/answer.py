"""Answer latency of the default generator on the demo corpus: first token, total, tokens/s, memory,
and the reader's own time.

    python benchmarks/answer.py [--index indexes/default] [--k 5] [--passage-chars 400 0] [--json]
    python benchmarks/answer.py --pipeline [--index indexes/default] [--json]

Runs a fixed list of questions through `Answerer` (hybrid retrieval, k passages) with the
in-process generator, one model load per process (not counted), and reports medians, for
each passage budget (0: whole chunks) without and with the shipped reader (which reads the
whole chunks before the generator's first token), side by side in one run. With `--pipeline`,
the whole pipeline as `rag ask` runs it (the shipped generator, reader, verifier and decision)
instead: the first text it streams (what a user sees first, never taken back), beside the
generator's first token and the total.
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
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import Index, verify
from rag.answer import Answer, AnswerConfig, Answerer, Delta
from rag.generate import backends
from rag.generate.backends import TransformersGenerator
from rag.pipeline import Pipeline
from rag.reader import Reader

QUESTIONS = [
    "How long do transfers to another bank take?", "What is the fee for a paper statement?",
    "How do I create a virtual environment?", "What does the shopt builtin do?",
    "Can I add an authorized user to a savings account?", "How are list comprehensions written?",
    "What is the daily limit for QR transfers?", "How does brace expansion work?",
]
# --pipeline adds the two that showed a draft, then the reader's span under it (issue 26).
PIPELINE_QUESTIONS = [*QUESTIONS, "What is the daily send limit for verified Everyone Pay accounts?",
                      "What is the monthly send limit for verified Everyone Pay accounts?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="indexes/default")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--passage-chars", type=int, nargs="+", default=[400, 0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--pipeline", action="store_true", help="the whole pipeline's first streamed text")
    args = parser.parse_args()
    if args.pipeline:
        show(first_text(Pipeline.build(Index(args.index), backends.create(backends.GeneratorSpec()),
                                       AnswerConfig(k=args.k), Reader(), verify.load())), args.json)
        return
    generator = TransformersGenerator()
    start = time.perf_counter()
    _ = generator.model, generator.tokenizer
    load_s = time.perf_counter() - start
    index = Index(args.index)
    reader = Reader()
    results = [run(Pipeline.build(index, generator, AnswerConfig(k=args.k, passage_chars=chars or None),
                                  with_reader).answerer, generator.tokenizer)
               for chars in args.passage_chars for with_reader in (None, reader)]
    result = {"model": generator.name, "device": generator.device, "k": args.k, "questions": len(QUESTIONS),
              "load_s": round(load_s, 2), "runs": results,
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("\n".join(f"{k}: {v}" for k, v in result.items() if k != "runs"))
    for r in results:
        print(", ".join(f"{k} {v}" for k, v in r.items()))


def run(answerer: Answerer, tokenizer: Any) -> dict[str, object]:
    """Medians over QUESTIONS for one configuration."""
    answerer.ask("warm up")
    rows = []
    for question in QUESTIONS:
        pieces, started = 0, time.perf_counter()
        for event in answerer.stream(question):
            if isinstance(event, Answer):
                answer = event
            else:
                pieces += 1
        tokens = len(tokenizer(answer.answer)["input_ids"])
        gen_s = answer.timings["total_s"] - answer.timings["first_token_s"]
        rows.append({"prompt_tokens": answer.prompt_tokens, "first_token_s": answer.timings["first_token_s"],
                     "read_s": answer.timings.get("read_s", 0.0),
                     "total_s": time.perf_counter() - started, "tokens": tokens,
                     "tokens_per_s": tokens / gen_s if gen_s > 0 else 0.0, "abstained": answer.abstained})
    return {"passage_chars": answerer.config.passage_chars or "whole", "reader": answerer.reader is not None,
            **{f"median_{key}": round(statistics.median(r[key] for r in rows), 3)
               for key in ("prompt_tokens", "read_s", "first_token_s", "total_s", "tokens", "tokens_per_s")},
            "abstained": sum(r["abstained"] for r in rows)}


def first_text(pipeline: Pipeline) -> dict[str, object]:
    """Medians over PIPELINE_QUESTIONS of the first streamed text, the generator's first token and the
    whole answer, timed from the call, and how the answers were made."""
    pipeline.ask("warm up")
    rows: list[tuple[float, float, float, str]] = []  # first text, first token, total, what decided
    for question in PIPELINE_QUESTIONS:
        started, first = time.perf_counter(), None
        for event in pipeline.stream(question):
            if isinstance(event, Delta) and first is None:
                first = time.perf_counter() - started
            elif isinstance(event, Answer):
                answer = event
        total = time.perf_counter() - started
        rows.append((total if first is None else first, answer.timings["first_token_s"], total,
                     answer.abstain_reason or answer.answered_by or "?"))
    made = [r[3] for r in rows]
    return {"model": pipeline.name, "questions": len(rows), "made": {m: made.count(m) for m in sorted(set(made))},
            **{f"median_{key}": round(statistics.median(float(r[n]) for r in rows), 3)
               for n, key in enumerate(("first_text_s", "first_token_s", "total_s"))},
            "first_text_s": [round(r[0], 2) for r in rows]}


def show(result: dict[str, object], as_json: bool) -> None:
    print(json.dumps(result, indent=1) if as_json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
