"""`rag eval retrieval|generator|answers|verifier`: measure quality on a labelled dataset."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.cli.options import (
    adapter_options,
    default_index,
    generator_option,
    passages_option,
    reader_options,
    rerank_options,
    verifier_path_option,
)
from rag.cli.render import EXIT_FILES_FAILED, EXIT_OK, print_json
from rag.evaluation.answers import FORMATS as ANSWER_FORMATS
from rag.evaluation.generator import SETTINGS, SYSTEMS
from rag.evaluation.verifier import JUDGE
from rag.retrieve import MODES
from rag.settings import Settings

EVAL_MODES = [*MODES, *(f"{m}+rerank" for m in MODES)]


def register(sub: Any, env: Settings) -> None:
    evaluate = sub.add_parser("eval", help="measure retrieval or generation quality on a labelled dataset")
    what = evaluate.add_subparsers(dest="what", required=True)
    retrieval = what.add_parser("retrieval", help="nDCG@10, Recall@1/5/10/20, MRR@10 and latency per mode")
    retrieval.add_argument("--dataset", type=Path, required=True, help="SQuAD JSON file or BEIR folder")
    retrieval.add_argument("--format", choices=["squad", "beir", "halueval"], required=True,
                           help="halueval: the last 1000 rows of a HaluEval QA file (the project's dev split)")
    retrieval.add_argument("--mode", nargs="+", choices=EVAL_MODES, default=list(MODES),
                           help="modes (default: dense bm25 hybrid); MODE+rerank adds the reranker")
    rerank_options(retrieval)
    retrieval.add_argument("--limit", type=int, help="SQuAD: whole articles up to N questions; BEIR: first N queries")
    retrieval.add_argument("--split", default="test", help="BEIR qrels split (default test)")
    retrieval.add_argument("--cache", type=Path, help="keep the dataset's documents and index here, reused next time")
    retrieval.add_argument("--out", type=Path, help="write results.json and results.md into this folder")
    retrieval.add_argument("--json", action="store_true", help="print {mode: {metric: value}}")

    gen = what.add_parser("generator", help="answering systems side by side (generator alone, reader alone, the "
                                            "whole pipeline): EM, F1, citations, abstention, hallucination")
    gen.add_argument("--dataset", type=Path, required=True,
                     help="SQuAD v1.1 JSON (evaluation only), or HaluEval QA (its last 1000 rows: the dev split)")
    gen.add_argument("--format", choices=["squad", "halueval"], default="squad")
    gen.add_argument("--sample", type=int, default=300,
                     help="questions drawn with a fixed seed from all articles, which all serve as the corpus (300)")
    gen.add_argument("--limit", type=int, help="keep whole articles up to N questions first (the corpus shrinks too)")
    gen.add_argument("--systems", nargs="+", choices=SYSTEMS, default=["generator", "reader", "pipeline"],
                     help="base: the bare generator; generator: with its adapter, no reader; reader: the reader's "
                          "span alone; pipeline: reader, generator, verifier and decision (default: the last three)")
    generator_option(gen, env)
    adapter_options(gen, env)
    reader_options(gen, env)
    verifier_path_option(gen)
    gen.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                     help="gold: gold paragraph among distractors; retrieved: the real retriever's passages")
    passages_option(gen)
    gen.add_argument("--unanswerable", type=float, default=0.3, help="share of questions whose gold is removed")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--cache", type=Path, help="keep the dataset's documents and index here, reused next time")
    gen.add_argument("--out", type=Path, help="write results.json, results.md and outcomes.jsonl into this folder")
    gen.add_argument("--json", action="store_true", help="print {system: {setting: {metric: value}}}")

    answers = what.add_parser("answers", help="the whole pipeline (retrieve, generate, verify) over a question set: "
                                              "faithfulness, citation precision/recall, EM/F1, abstention, latency")
    answers.add_argument("--dataset", type=Path, required=True, help="SQuAD JSON, or JSON lines of "
                         '{"question": ..., "answers": [...]?, "answerable": true/false?, "id": ...?}')
    answers.add_argument("--format", choices=ANSWER_FORMATS, required=True)
    answers.add_argument("--index", default=default_index(env),
                         help="index to ask over, or 'build' to index the SQuAD dataset's paragraphs (under --cache)")
    answers.add_argument("--limit", type=int, help="SQuAD: whole articles up to N questions; JSON lines: first N")
    answers.add_argument("--cache", type=Path, help="with --index build: keep the documents and index here")
    generator_option(answers, env)
    adapter_options(answers, env)
    verifier_path_option(answers)
    answers.add_argument("--strict", action="store_true", help="drop unsupported sentences, as rag ask --strict")
    reader_options(answers, env)
    passages_option(answers)
    answers.add_argument("--out", type=Path, help="write outcomes.jsonl (resumable), results.json, results.md and "
                                                  "PNG plots into this folder; rerunning resumes")
    answers.add_argument("--json", action="store_true", help="print the metrics as one JSON object")

    ver = what.add_parser("verifier", help="the verifier against token overlap and a yes/no judge: balanced "
                                           "accuracy, ROC AUC, calibration")
    ver.add_argument("--halueval", type=Path, required=True,
                     help="HaluEval QA JSONL: its last 1000 rows (dev) are scored, the 500 before calibrate")
    ver.add_argument("--vitaminc", type=Path, help="VitaminC JSON (evaluation only)")
    ver.add_argument("--limit", type=int, default=1000, help="pairs per dataset, drawn with a fixed seed (1000)")
    ver.add_argument("--calibration-limit", type=int, default=400, help="calibration pairs for the baselines (400)")
    verifier_path_option(ver)
    ver.add_argument("--judge", default=JUDGE,
                     help="generator used as the yes/no judge baseline, bare (default %(default)s); '' for none")
    ver.add_argument("--claims", type=Path, action="append", default=[],
                     help="also score these labelled claims (JSON lines: premise, hypothesis, label); repeatable")
    ver.add_argument("--out", type=Path, help="write results.json, results.md and calibration.png into this folder")
    ver.add_argument("--json", action="store_true", help="print {verifier: {dataset: {metric: value}}}")
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Turn the arguments into the evaluation's config, run it, write and print its Report."""
    from tqdm import tqdm

    from rag.evaluation import answers, generator, retrieval, verifier

    runs: dict[str, Callable[[Any], Any]] = {
        "retrieval": lambda bar: retrieval.run(retrieval.RetrievalEval(
            args.dataset, args.format, tuple(args.mode), args.limit, args.split, args.cache, args.reranker,
            args.rerank_top_n)),
        "generator": lambda bar: generator.run(generator.GeneratorEval(
            args.dataset, args.format, args.sample, args.limit, tuple(args.systems), args.generator, args.adapter,
            args.reader, args.verifier, tuple(args.settings), args.k, args.unanswerable, args.max_new_tokens,
            args.cache, args.backend), bar),
        "answers": lambda bar: answers.run(answers.AnswersEval(
            args.dataset, args.format, args.index, args.limit, args.cache, args.generator, args.adapter,
            args.verifier, args.reader, args.use_reader, args.strict, args.k, backend=args.backend), args.out, bar),
        "verifier": lambda bar: verifier.run(verifier.VerifierEval(
            args.halueval, args.vitaminc, args.limit, args.calibration_limit, args.verifier, args.judge,
            tuple(args.claims)), bar),
    }
    with tqdm(total=None, desc=args.what, unit="item", disable=None) as bar:
        report = runs[args.what](bar)
    for problem in report.problems:
        print(f"rag eval {args.what}: skipped {problem}", file=sys.stderr)
    if args.out:
        report.write(args.out)
    if args.json:
        print_json(report.results)
    else:
        print(report.table)
    return EXIT_FILES_FAILED if report.problems else EXIT_OK
