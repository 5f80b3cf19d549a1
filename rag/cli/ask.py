"""`rag ask` (answer a question from the index) and `rag verify` (score premise/hypothesis pairs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rag import verify
from rag.answer import AnswerConfig
from rag.cli.options import (
    adapter_options,
    generator_option,
    index_option,
    passages_option,
    reader_options,
    verifier_options,
    verifier_path_option,
)
from rag.cli.render import EXIT_FILES_FAILED, EXIT_OK, prompt_loop, show_answer
from rag.fsutil import read_jsonl
from rag.generate.backends import Sampling
from rag.index import Index
from rag.pipeline import Pipeline
from rag.reader import Reader
from rag.retrieve import MODES
from rag.settings import Settings


def register(sub: Any, env: Settings) -> None:
    ask = sub.add_parser("ask", help="answer a question from the index, citing the passages used")
    ask.add_argument("question", nargs="?", help="the question (omit for an interactive prompt)")
    index_option(ask, env)
    passages_option(ask, "passages shown to the model")
    ask.add_argument("--mode", choices=MODES, default="hybrid", help="retrieval mode (default hybrid)")
    ask.add_argument("--rerank", action="store_true", help="rerank the retrieved passages first")
    generator_option(ask, env, "; with --server, the server's model name")
    ask.add_argument("--server", default=env.server,
                     help="base URL of an OpenAI-compatible server, e.g. http://gpu-host:8000/v1 ($RAG_SERVER)")
    adapter_options(ask, env)
    ask.add_argument("--context-tokens", type=int,
                     help="the model's window, prompt plus answer (default: read from the model in process, "
                          "4096 for a server)")
    ask.add_argument("--max-new-tokens", type=int, default=Sampling.max_new_tokens)
    ask.add_argument("--passage-chars", type=int, default=AnswerConfig.passage_chars,
                     help="cut each passage to its most relevant sentences within this many characters; "
                          "0 shows whole chunks (default %(default)s)")
    verifier_options(ask, env)
    reader_options(ask, env)
    ask.add_argument("--extractive", action="store_true",
                     help="answer with the reader's span alone, without the generator (fast, no LLM)")
    ask.add_argument("--json", action="store_true", help="print the whole answer as one JSON object")
    ask.set_defaults(func=run_ask)

    check = sub.add_parser("verify", help="score how well each premise supports its hypothesis")
    check.add_argument("--pairs", type=Path, required=True,
                       help='JSON lines {"premise": ..., "hypothesis": ...}; bad lines are reported and skipped')
    verifier_path_option(check)
    check.add_argument("--json", action="store_true", help="print one JSON object per pair (JSON lines)")
    check.set_defaults(func=run_verify)


def run_ask(args: argparse.Namespace) -> int:
    from rag.generate import backends

    generator = None if args.extractive else backends.make(args.generator, args.server, Settings.from_env().api_key,
                                                           args.context_tokens, args.adapter, args.backend)
    config = AnswerConfig(k=args.k, passage_chars=args.passage_chars or None,
                          sampling=Sampling(max_new_tokens=args.max_new_tokens))
    checker = verify.load(args.verifier) if args.verify else None
    with Index(args.index) as index:
        answers = Pipeline.build(index, generator, config, _reader(args), checker, args.strict, args.mode, args.rerank)

        def handle(question: str) -> None:
            show_answer(answers.stream(question), args.json)

        if args.question is not None:
            handle(args.question)
            return EXIT_OK
        print(f"Asking {args.index} ({index.info().chunks} chunks) with {answers.name}. "
              "Empty line or Ctrl-D quits.")
        return prompt_loop("ask> ", handle)


def _reader(args: argparse.Namespace) -> Reader | None:
    if not args.use_reader:
        if args.extractive:
            raise ValueError("--extractive answers with the reader's span: it cannot go with --no-reader")
        return None
    return Reader(args.reader)


def run_verify(args: argparse.Namespace) -> int:
    problems: list[str] = []
    rows = read_jsonl(args.pairs, ("premise", "hypothesis"), problems)
    checker = verify.load(args.verifier)
    scores = checker.scores([(r["premise"], r["hypothesis"]) for r in rows])
    for problem in problems:
        print(f"rag verify: skipped {problem}", file=sys.stderr)
    for row, score in zip(rows, scores, strict=True):
        result = {"score": round(score, 4), "supported": score >= checker.threshold}
        if args.json:
            print(json.dumps(row | result, ensure_ascii=False))
        else:
            print(f"{score:.3f}  {'supported  ' if result['supported'] else 'unsupported'}  {row['hypothesis'][:80]}")
    return EXIT_FILES_FAILED if problems else EXIT_OK
