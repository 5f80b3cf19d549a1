"""Retrieval over the demo corpus, graded by the demo questions' gold answers (no relevance labels):
how often a passage holding a gold answer is first, or in the top 5, and its mean reciprocal rank,
per retrieval mode. Build the index first (`make run` or `rag ingest corpus`).

    python benchmarks/demo_retrieval.py --index indexes/default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.evaluation import answers as ea
from rag.index import Index
from rag.retrieve import MODES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/default"))
    parser.add_argument("--questions", type=Path, default=Path("eval/demo-questions.jsonl"))
    parser.add_argument("--json", action="store_true", help="print {mode: {metric: value}}")
    args = parser.parse_args()
    problems: list[str] = []
    questions = ea.load_jsonl(args.questions, problems)
    if problems:
        raise SystemExit("\n".join(problems))
    index = Index(args.index)
    at_one = ea.retrieval(index, questions, MODES, k=1)
    at_five = ea.retrieval(index, questions, MODES, k=5)
    results = {mode: {"questions": at_five[mode]["questions"], "answer_first": at_one[mode]["answer_in_top_1"],
                      "answer_in_top_5": at_five[mode]["answer_in_top_5"], "mrr@5": at_five[mode]["mrr"],
                      "latency_p50_ms": at_five[mode]["latency_p50_ms"]} for mode in MODES}
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print("| mode | questions | answer first | answer in top 5 | MRR@5 | p50 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for mode, row in results.items():
        print(f"| {mode} | {row['questions']} | {row['answer_first']} | {row['answer_in_top_5']} | {row['mrr@5']} "
              f"| {row['latency_p50_ms']} |")


if __name__ == "__main__":
    main()
