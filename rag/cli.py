"""The `rag` command: ingest, search, ask, verify, eval, train, finetune, ui, info.

Every reporting command takes --json."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag import threads, verify
from rag.answer import Answer, AnswerConfig, Delta, Event
from rag.embed import BACKENDS, DEFAULT_BACKEND, GPU_BACKEND
from rag.evaluation.answers import FORMATS as ANSWER_FORMATS
from rag.evaluation.generator import SETTINGS, SYSTEMS
from rag.fsutil import read_jsonl
from rag.generate.backends import GeneratorError, Sampling
from rag.generate.citations import Citation
from rag.generate.weights import DEFAULT_GENERATOR
from rag.index import DEFAULT_INDEX, Index
from rag.ingest.chunker import ChunkConfig
from rag.ingest.pipeline import ENGINES
from rag.ingest.sandbox import DEFAULT_TIMEOUT_S, ParseLimits
from rag.ingest.work import IngestReport
from rag.models import ModelNotFoundError
from rag.pipeline import REASONS, Pipeline
from rag.reader import Reader
from rag.rerank import DEFAULT_RERANKER, DEFAULT_TOP_N
from rag.retrieve import MODES, FusionConfig, Hit
from rag.settings import Settings
from rag.store import StoreError
from rag.training.generator import FinetuneConfig
from rag.vectors import POLICIES

EXIT_OK, EXIT_FILES_FAILED, EXIT_ERROR = 0, 1, 2
# Modules of the optional parts, and the extra (pyproject.toml) that brings each.
EXTRAS = {"streamlit": "ui", "matplotlib": "eval", "sklearn": "eval", "ray": "ray"}
EVAL_MODES = [*MODES, *(f"{m}+rerank" for m in MODES)]


def display_path(path: str) -> str:
    """Paths under the working folder are shown relative to it, others in full."""
    try:
        return os.path.relpath(path) if Path(path).is_relative_to(Path.cwd()) else path
    except ValueError:
        return path


INDEX_HELP = f"index folder (default: $RAG_INDEX or {DEFAULT_INDEX})"


def _parser() -> argparse.ArgumentParser:
    """One builder per subcommand; options several share are defined once below them."""
    parser = argparse.ArgumentParser(prog="rag", description="Question answering over your own documents.")
    sub = parser.add_subparsers(dest="command", required=True)
    env = Settings.from_env()
    for build in (_ingest_parser, _search_parser, _ask_parser, _check_parser, _evaluate_parser, _train_parser,
                  _tune_parser, _ui_parser, _info_parser):
        build(sub, env)
    return parser


def _default_index(env: Settings) -> str:
    return env.index or str(DEFAULT_INDEX)


def _ingest_parser(sub: Any, env: Settings) -> None:
    ingest = sub.add_parser("ingest", help="index files and folders; only new or changed files are embedded")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument("--index", default=_default_index(env), help=INDEX_HELP)
    ingest.add_argument("--rebuild", action="store_true", help="rebuild from scratch (old index stays live until done)")
    ingest.add_argument("--wait", action="store_true", help="wait for another ingest into this index to finish")
    ingest.add_argument("--embedder", help="embedding model: packaged name, local folder or hub id")
    ingest.add_argument("--embedder-backend", choices=BACKENDS,
                        help=f"how to run it: {', '.join(BACKENDS)} (new index or --rebuild; default "
                             f"{DEFAULT_BACKEND}, {GPU_BACKEND} with an NVIDIA GPU); kept by the index")
    ingest.add_argument("--chunk-tokens", type=int, help="chunk size in tokens (new index or --rebuild)")
    ingest.add_argument("--overlap-tokens", type=int, help="tokens shared by neighbouring chunks")
    ingest.add_argument("--max-file-mb", type=float, help="skip files larger than this (default 50)")
    ingest.add_argument("--parse-timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds one file may take to parse before it is skipped (default {DEFAULT_TIMEOUT_S:g})")
    ingest.add_argument("--index-type", choices=POLICIES,
                        help="vector index: exact flat, approximate ivf, auto (ivf from 100k chunks), or ivfpq "
                             "(compressed, for more vectors than memory; exact below 10k chunks); kept")
    ingest.add_argument("--engine", choices=ENGINES, default="local",
                        help="local, or ray: parse and embed as a Ray Data pipeline (needs the [ray] extra)")
    ingest.add_argument("--address", help="Ray cluster address for --engine ray (default: start a local Ray)")
    ingest.add_argument("--json", action="store_true", help="print one JSON object")


def _search_parser(sub: Any, env: Settings) -> None:
    search = sub.add_parser("search", help="find the chunks nearest a query; no QUERY starts a prompt")
    search.add_argument("query", nargs="?", help="the query (omit for an interactive prompt)")
    search.add_argument("--index", default=_default_index(env), help=INDEX_HELP)
    search.add_argument("-k", type=int, default=5, help="how many chunks (default 5)")
    search.add_argument("--mode", choices=MODES, default="hybrid", help="ranking: dense, bm25 or hybrid (default)")
    search.add_argument("--rrf-k", type=int, default=FusionConfig.rrf_k, help="RRF constant (default 10)")
    search.add_argument("--dense-weight", type=float, default=FusionConfig.dense_weight, help="hybrid: dense weight")
    search.add_argument("--bm25-weight", type=float, default=FusionConfig.bm25_weight, help="hybrid: BM25 weight")
    _rerank_options(search)
    search.add_argument("--rerank", action="store_true", help="rescore the best hits with the cross-encoder reranker")
    search.add_argument("--json", action="store_true", help="print a JSON list")


def _ask_parser(sub: Any, env: Settings) -> None:
    ask = sub.add_parser("ask", help="answer a question from the index, citing the passages used")
    ask.add_argument("question", nargs="?", help="the question (omit for an interactive prompt)")
    ask.add_argument("--index", default=_default_index(env), help=INDEX_HELP)
    _passages_option(ask, "passages shown to the model")
    ask.add_argument("--mode", choices=MODES, default="hybrid", help="retrieval mode (default hybrid)")
    ask.add_argument("--rerank", action="store_true", help="rerank the retrieved passages first")
    _generator_option(ask, env, "; with --server, the server's model name")
    ask.add_argument("--server", default=env.server,
                     help="base URL of an OpenAI-compatible server, e.g. http://gpu-host:8000/v1 ($RAG_SERVER)")
    _adapter_options(ask, env)
    ask.add_argument("--context-tokens", type=int,
                     help="the model's window, prompt plus answer (default: read from the model in process, "
                          "4096 for a server)")
    ask.add_argument("--max-new-tokens", type=int, default=Sampling.max_new_tokens)
    ask.add_argument("--passage-chars", type=int, default=AnswerConfig.passage_chars,
                     help="cut each passage to its most relevant sentences within this many characters; "
                          "0 shows whole chunks (default %(default)s)")
    _verifier_options(ask, env)
    _reader_options(ask, env)
    ask.add_argument("--extractive", action="store_true",
                     help="answer with the reader's span alone, without the generator (fast, no LLM)")
    ask.add_argument("--json", action="store_true", help="print the whole answer as one JSON object")


def _check_parser(sub: Any, env: Settings) -> None:
    check = sub.add_parser("verify", help="score how well each premise supports its hypothesis")
    check.add_argument("--pairs", type=Path, required=True,
                       help='JSON lines {"premise": ..., "hypothesis": ...}; bad lines are reported and skipped')
    _verifier_path_option(check)
    check.add_argument("--json", action="store_true", help="print one JSON object per pair (JSON lines)")


def _evaluate_parser(sub: Any, env: Settings) -> None:
    evaluate = sub.add_parser("eval", help="measure retrieval or generation quality on a labelled dataset")
    what = evaluate.add_subparsers(dest="what", required=True)
    retrieval = what.add_parser("retrieval", help="nDCG@10, Recall@1/5/10/20, MRR@10 and latency per mode")
    retrieval.add_argument("--dataset", type=Path, required=True, help="SQuAD JSON file or BEIR folder")
    retrieval.add_argument("--format", choices=["squad", "beir", "halueval"], required=True,
                           help="halueval: the last 1000 rows of a HaluEval QA file (the project's dev split)")
    retrieval.add_argument("--mode", nargs="+", choices=EVAL_MODES, default=list(MODES),
                           help="modes (default: dense bm25 hybrid); MODE+rerank adds the reranker")
    _rerank_options(retrieval)
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
    _generator_option(gen, env)
    _adapter_options(gen, env)
    _reader_options(gen, env)
    _verifier_path_option(gen)
    gen.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                     help="gold: gold paragraph among distractors; retrieved: the real retriever's passages")
    _passages_option(gen)
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
    answers.add_argument("--index", default=_default_index(env),
                         help="index to ask over, or 'build' to index the SQuAD dataset's paragraphs (under --cache)")
    answers.add_argument("--limit", type=int, help="SQuAD: whole articles up to N questions; JSON lines: first N")
    answers.add_argument("--cache", type=Path, help="with --index build: keep the documents and index here")
    _generator_option(answers, env)
    _adapter_options(answers, env)
    _verifier_path_option(answers)
    answers.add_argument("--strict", action="store_true", help="drop unsupported sentences, as rag ask --strict")
    _reader_options(answers, env)
    _passages_option(answers)
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
    _verifier_path_option(ver)
    ver.add_argument("--judge", default=DEFAULT_GENERATOR,
                     help="generator used as the yes/no judge baseline, bare (default %(default)s); '' for none")
    ver.add_argument("--out", type=Path, help="write results.json, results.md and calibration.png into this folder")
    ver.add_argument("--json", action="store_true", help="print {verifier: {dataset: {metric: value}}}")


def _train_parser(sub: Any, env: Settings) -> None:
    train = sub.add_parser("train", help="train the project's own models")
    model = train.add_subparsers(dest="what", required=True)
    reranker = model.add_parser("reranker", help="fine-tune a cross-encoder reranker on HaluEval QA groups")
    _crossencoder_training_options(reranker, "reranker", "(last 1000 rows held out)", "questions")
    verifier = model.add_parser("verifier", help="fine-tune the answer verifier (a cross-encoder) on HaluEval QA")
    _crossencoder_training_options(verifier, "verifier", "(last 1000 rows held out, the 500 before calibrate)", "rows")
    reader = model.add_parser("reader", help="fine-tune the extractive reader (a span head) on HaluEval QA; "
                                             "a rerun resumes from out/checkpoints")
    _crossencoder_training_options(reader, "reader", "(last 1000 rows held out)", "rows")
    reader.add_argument("--tables", type=int, default=0, help="add N synthetic table questions (default 0)")
    reader.add_argument("--init", type=Path, help="start from this reader folder instead of the bare base model")
    reader.add_argument("--learning-rate", type=float, help="peak learning rate (default 1e-4)")


def _tune_parser(sub: Any, env: Settings) -> None:
    tune = sub.add_parser("finetune", help="train a LoRA adapter that makes a generator answer from its passages")
    tune.add_argument("--data", type=Path, required=True, help="HaluEval QA JSONL (last 1000 rows held out)")
    tune.add_argument("--out", type=Path, default=Path("models/generator-adapter"),
                      help="folder for the adapter, finetune.json and checkpoints/ (default %(default)s); "
                           "a rerun resumes from its last checkpoint")
    tune.add_argument("--base", default=FinetuneConfig.base,
                      help="causal LM: packaged name, .gguf file, folder or hub id (default %(default)s)")
    tune.add_argument("--limit", type=int, help="train on the first N records only")
    tune.add_argument("--epochs", type=float, default=FinetuneConfig.epochs)
    tune.add_argument("--max-steps", type=int, default=FinetuneConfig.max_steps, help="stop after N steps")
    tune.add_argument("--lora-r", type=int, default=FinetuneConfig.lora_r)
    tune.add_argument("--lora-alpha", type=int, default=FinetuneConfig.lora_alpha)
    tune.add_argument("--lora-layers", type=int, default=FinetuneConfig.lora_layers,
                      help="adapt the top N decoder layers; 0: all (default %(default)s, for CPU speed)")
    tune.add_argument("--learning-rate", type=float, default=FinetuneConfig.learning_rate)
    tune.add_argument("--batch-size", type=int, default=FinetuneConfig.batch_size)
    tune.add_argument("--grad-accum", type=int, default=FinetuneConfig.grad_accum)
    tune.add_argument("--eval-steps", type=int, default=FinetuneConfig.eval_steps, help="dev loss every N steps")
    tune.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when present (bf16), else cpu")
    tune.add_argument("--seed", type=int, default=FinetuneConfig.seed)
    tune.add_argument("--reader", default=FinetuneConfig.reader,
                      help="reader folder whose evidence the prompts show, as rag ask shows it (default: the "
                           "shipped reader); 'none': prompts without evidence")
    tune.add_argument("--hint-noise", type=float, default=FinetuneConfig.hint_noise,
                      help="share of answerable examples shown a distractor's span as evidence (default %(default)s)")
    tune.add_argument("--json", action="store_true", help="print what was recorded as one JSON object")


def _ui_parser(sub: Any, env: Settings) -> None:
    ui = sub.add_parser("ui", help="open the web UI (Streamlit) on http://127.0.0.1:8501")
    ui.add_argument("--index", default=_default_index(env), help=INDEX_HELP)
    ui.add_argument("--corpus", type=Path, default=Path(env.corpus or "corpus"),
                    help="folder that uploads go into and rebuilds index ($RAG_CORPUS, default corpus)")
    ui.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8501)


def _info_parser(sub: Any, env: Settings) -> None:
    info = sub.add_parser("info", help="describe an index")
    info.add_argument("--index", default=_default_index(env), help=INDEX_HELP)
    info.add_argument("--json", action="store_true", help="print one JSON object")


def _adapter_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument("--adapter", default=env.generator_adapter,
                        help="LoRA adapter folder from rag finetune ($RAG_ADAPTER; default: the project's "
                             "fine-tuned adapter for the default generator)")
    parser.add_argument("--no-adapter", dest="adapter", action="store_const", const=None,
                        help="the bare base model, without any adapter")


def _crossencoder_training_options(parser: argparse.ArgumentParser, kind: str, held_out: str, unit: str) -> None:
    parser.add_argument("--data", type=Path, required=True, help=f"HaluEval QA JSONL {held_out}")
    parser.add_argument("--out", type=Path, required=True, help=f"folder to write the weights and {kind}.json into")
    parser.add_argument("--base", default="all-MiniLM-L6-v2", help="base model: packaged name, folder or hub id")
    parser.add_argument("--limit", type=int, help=f"train on the first N {unit} only")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: every core)")
    parser.add_argument("--json", action="store_true", help="print what was recorded as one JSON object")


def _generator_option(parser: argparse.ArgumentParser, env: Settings, more: str = "") -> None:
    parser.add_argument("--generator", default=env.generator or DEFAULT_GENERATOR,
                        help=f"model: packaged name, .gguf file, folder or hub id ($RAG_GENERATOR; default "
                             f"{DEFAULT_GENERATOR}){more}")


def _verifier_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verifier", type=Path, help="folder from rag train verifier (default: the shipped one)")


def _passages_option(parser: argparse.ArgumentParser, what: str = "passages per question") -> None:
    parser.add_argument("-k", type=int, default=AnswerConfig.k, help=f"{what} (default {AnswerConfig.k})")


def _verifier_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    _verifier_path_option(parser)
    parser.add_argument("--strict", action="store_true", default=env.strict,
                        help="drop sentences the verifier finds unsupported; abstain if none is left ($RAG_STRICT)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip checking each sentence against its passages")


def _reader_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument("--reader", type=Path, default=env.reader,
                        help="folder from rag train reader ($RAG_READER; default: the shipped one)")
    parser.add_argument("--no-reader", dest="use_reader", action="store_false",
                        help="no extractive reader: the generator alone finds, cites and decides")


def _reader(args: argparse.Namespace) -> Reader | None:
    if not args.use_reader:
        if getattr(args, "extractive", False):
            raise ValueError("--extractive answers with the reader's span: it cannot go with --no-reader")
        return None
    return Reader(args.reader)


def _rerank_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reranker", default=DEFAULT_RERANKER,
                        help=f"cross-encoder: packaged name, folder or hub id (default {DEFAULT_RERANKER})")
    parser.add_argument("--rerank-top-n", type=int, default=DEFAULT_TOP_N,
                        help=f"how many first-stage hits the reranker rescores (default {DEFAULT_TOP_N})")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    notices = logging.getLogger("rag")  # one-off notices of this package, such as model conversion
    if not notices.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("rag: %(message)s"))
        notices.addHandler(handler)
        notices.setLevel(logging.INFO)
    try:
        return int(COMMANDS[args.command](args))
    except (StoreError, ModelNotFoundError, GeneratorError, ValueError, OSError) as exc:
        print(f"rag {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"rag {args.command}: error: this needs {exc.name}, which the base install leaves out: "
              f"pip install -e '.[{extra}]'", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"rag {args.command}: interrupted", file=sys.stderr)
        return 130


def cmd_ingest(args: argparse.Namespace) -> int:
    chunking = None
    if args.chunk_tokens or args.overlap_tokens is not None:
        default = ChunkConfig()
        chunking = ChunkConfig(args.chunk_tokens or default.chunk_tokens,
                               default.overlap_tokens if args.overlap_tokens is None else args.overlap_tokens)
    index = Index(args.index, embedder=args.embedder, embedder_backend=args.embedder_backend, chunking=chunking)
    max_bytes = int(args.max_file_mb * 2**20) if args.max_file_mb else None
    report = index.ingest(args.paths, rebuild=args.rebuild, wait=args.wait, max_file_bytes=max_bytes,
                          index_type=args.index_type, parse_limits=ParseLimits(timeout_s=args.parse_timeout),
                          engine=args.engine, address=args.address)
    if args.json:
        _print_json(_report_json(report))
    else:
        _print_report(report, args.index)
    return EXIT_OK if report.ok else EXIT_FILES_FAILED


def _report_json(report: IngestReport) -> dict[str, Any]:
    out = asdict(report)
    for key in ("added", "updated", "removed"):
        out[key] = [display_path(p) for p in out[key]]
    out["failed"] = [{"path": display_path(f["path"]), "error": f["error"]} for f in out["failed"]]
    return out


def _print_report(report: IngestReport, index: str) -> None:
    where = f"{index} ({report.snapshot})" if report.snapshot else f"{index} (no changes)"
    rate = report.chunks_embedded / report.seconds if report.seconds else 0.0
    print(f"indexed into {where}: {len(report.added)} added, {len(report.updated)} updated, "
          f"{len(report.removed)} removed, {report.unchanged} unchanged, {len(report.failed)} failed; "
          f"{report.chunks_total} chunks ({report.chunks_embedded} embedded) in {report.seconds:.1f} s "
          f"({rate:.1f} chunks/s)")
    for failure in report.failed:
        print(f"  FAILED {display_path(failure['path'])}: {failure['error']}", file=sys.stderr)


def cmd_search(args: argparse.Namespace) -> int:
    fusion = FusionConfig(rrf_k=args.rrf_k, dense_weight=args.dense_weight, bm25_weight=args.bm25_weight)
    threads.use(1)  # one thread answers a single query fastest on small machines (benchmarks/search.py)
    with Index(args.index, fusion=fusion, reranker=args.reranker, rerank_top_n=args.rerank_top_n) as index:
        if args.query is not None:
            _show_hits(index.search(args.query, args.k, args.mode, rerank=args.rerank), args.json)
            return EXIT_OK
        print(f"Searching {args.index} ({index.info().chunks} chunks). Empty line or Ctrl-D quits.")
        return _prompt_loop("search> ", lambda q: _show_hits(index.search(q, args.k, args.mode, rerank=args.rerank),
                                                             args.json))


def _prompt_loop(prompt: str, handle: Callable[[str], object]) -> int:
    """Read lines and hand each to `handle` until an empty line or end of input."""
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            print()
            return EXIT_OK
        if not line:
            return EXIT_OK
        handle(line)


def _hit_json(hit: Hit | Citation) -> dict[str, Any]:
    out = asdict(hit)
    out["source"] = display_path(hit.source)
    return out


def _show_hits(hits: list[Hit], as_json: bool) -> None:
    if as_json:
        _print_json([_hit_json(h) for h in hits])
        return
    if not hits:
        print("no results (the index is empty)")
    for hit in hits:
        where = display_path(hit.source) + (f" p.{hit.page}" if hit.page else "")
        heading = f"  [{hit.heading}]" if hit.heading else ""
        ranks = (("dense", hit.dense_rank), ("bm25", hit.bm25_rank), ("before rerank", hit.first_rank))
        why = " ".join(f"{m} #{r}" for m, r in ranks if r)
        snippet = " ".join(hit.text.split())
        more = "…" if len(snippet) > 300 else ""
        print(f"{hit.rank:>2}. {hit.score:.3f}  {where}{heading}  ({why})\n    {snippet[:300]}{more}")


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.generate import backends

    generator = None if args.extractive else backends.make(args.generator, args.server, Settings.from_env().api_key,
                                                           args.context_tokens, args.adapter)
    config = AnswerConfig(k=args.k, passage_chars=args.passage_chars or None,
                          sampling=Sampling(max_new_tokens=args.max_new_tokens))
    checker = verify.load(args.verifier) if args.verify else None
    with Index(args.index) as index:
        answers = Pipeline.build(index, generator, config, _reader(args), checker, args.strict, args.mode, args.rerank)

        def handle(question: str) -> None:
            _answer(answers.stream(question), args.json)

        if args.question is not None:
            handle(args.question)
            return EXIT_OK
        print(f"Asking {args.index} ({index.info().chunks} chunks) with {answers.name}. "
              "Empty line or Ctrl-D quits.")
        return _prompt_loop("ask> ", handle)


def _answer(stream: Iterator[Event], as_json: bool) -> None:
    """Stream the answer to the terminal and list its sources, or print it as one JSON object."""
    for event in stream:
        match event:
            case Delta(text=text) if not as_json:
                print(text, end="", flush=True)
            case Answer():
                answer = event
    if as_json:
        _print_json(answer.to_json() | {"retrieved": [_hit_json(h) for h in answer.retrieved],
                                        "dropped": [_hit_json(h) for h in answer.dropped],
                                        "citations": [_hit_json(c) for c in answer.citations]})
        return
    print()
    reason = f"abstained, {answer.abstain_reason}: {REASONS.get(answer.abstain_reason or '', '')}"
    if answer.draft is not None:
        why = reason if answer.abstained else "the reader's span, cited to its passage"
        print(f"-> {answer.answer}  ({why}; the draft above is not the answer)")
    for c in answer.citations:
        where = display_path(c.source) + (f" p.{c.page}" if c.page else "")
        print(f"  [{c.marker}] {where}: \"{' '.join(c.quote.split())}\"")
    if answer.abstained:
        if answer.draft is None:
            print(f"  ({reason})")
        _closest(answer)
    elif answer.faithfulness is not None:
        for sentence in answer.sentences:
            moved = f", cited [{sentence.citations[0]}] not {sentence.cited_as}" if sentence.citation_corrected else ""
            print(f"  {sentence.verdict} ({sentence.support:.2f}{moved}): {sentence.text}")
        print(f"  faithfulness {answer.faithfulness:.2f}")


def _closest(answer: Answer, n: int = 3) -> None:
    """Under an abstention, the passages that came closest, so the user can read them."""
    hits = (answer.retrieved or answer.dropped)[:n]
    if hits:
        print("  closest passages:")
    for hit in hits:
        where = display_path(hit.source) + (f" p.{hit.page}" if hit.page else "")
        snippet = " ".join(hit.text.split())
        print(f"  {hit.rank}. {where}: {snippet[:200]}{'…' if len(snippet) > 200 else ''}")


def cmd_verify(args: argparse.Namespace) -> int:
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


def cmd_eval(args: argparse.Namespace) -> int:
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
            args.cache), bar),
        "answers": lambda bar: answers.run(answers.AnswersEval(
            args.dataset, args.format, args.index, args.limit, args.cache, args.generator, args.adapter,
            args.verifier, args.reader, args.use_reader, args.strict, args.k), args.out, bar),
        "verifier": lambda bar: verifier.run(verifier.VerifierEval(
            args.halueval, args.vitaminc, args.limit, args.calibration_limit, args.verifier, args.judge), bar),
    }
    with tqdm(total=None, desc=args.what, unit="item", disable=None) as bar:
        report = runs[args.what](bar)
    for problem in report.problems:
        print(f"rag eval {args.what}: skipped {problem}", file=sys.stderr)
    if args.out:
        report.write(args.out)
    if args.json:
        _print_json(report.results)
    else:
        print(report.table)
    return EXIT_FILES_FAILED if report.problems else EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rag.training import reader, reranker
    from rag.training import verifier as verifier_training

    with tqdm(desc=f"train {args.what}", unit="step", disable=None) as bar:
        def progress(step: int, steps: int, loss: float) -> None:
            bar.total = steps
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.3f}")

        if args.what == "reader":
            record = reader.train(args.data, args.out, reader.ReaderConfig(
                base=args.base, limit=args.limit, epochs=args.epochs, seed=args.seed, threads=args.threads,
                tables=args.tables, init=str(args.init) if args.init else None,
                learning_rate=args.learning_rate or reader.ReaderConfig.learning_rate), progress)
        elif args.what == "verifier":
            record = verifier_training.train(args.data, args.out, verifier_training.VerifierConfig(
                base=args.base, limit=args.limit, epochs=args.epochs, seed=args.seed, threads=args.threads), progress)
        else:
            record = reranker.train(args.data, args.out, reranker.TrainConfig(
                base=args.base, limit=args.limit, epochs=args.epochs, seed=args.seed, threads=args.threads), progress)
    if args.json:
        _print_json(record)
    else:
        print(f"wrote {args.out}: {record['steps']} steps, final loss {record['final_loss']}, "
              f"{record['train_s']} s")
    return EXIT_OK


def cmd_finetune(args: argparse.Namespace) -> int:
    from rag.training import generator

    config = FinetuneConfig(base=args.base, limit=args.limit, epochs=args.epochs, max_steps=args.max_steps,
                            lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                            lora_layers=args.lora_layers or None, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, grad_accum=args.grad_accum, eval_steps=args.eval_steps,
                            save_steps=args.eval_steps, device=args.device, seed=args.seed,
                            reader=None if args.reader == "none" else args.reader, hint_noise=args.hint_noise)
    record = generator.finetune(args.data, args.out, config)
    if args.json:
        _print_json(record)
    else:
        print(f"wrote {args.out}: {record['train_records']} records, {record['steps']} steps, "
              f"train loss {record['train_loss']}, dev loss {record['dev_loss']}, {record['train_s']} s")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    """Run `streamlit run ui/app.py` from the checkout's root (where .streamlit/config.toml holds the
    UI's Streamlit options) in this process's place (exec: stopping `rag ui` stops the server, no
    orphan is left), bound to `--address`."""
    if importlib.util.find_spec("streamlit") is None:
        raise ModuleNotFoundError("No module named 'streamlit'", name="streamlit")
    root = Path(__file__).resolve().parent.parent
    app = root / "ui" / "app.py"
    if not app.is_file():
        print(f"rag ui: no web UI at {app}: install the project from its checkout (pip install -e .)", file=sys.stderr)
        return EXIT_ERROR
    env = os.environ | {"RAG_INDEX": str(Path(args.index).resolve()), "RAG_CORPUS": str(args.corpus.resolve())}
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.address,
               "--server.port", str(args.port)]
    print(f"rag ui: http://{args.address}:{args.port} over {args.index} (corpus {args.corpus}); Ctrl-C stops",
          file=sys.stderr)
    os.chdir(root)
    os.execve(sys.executable, command, env)


def cmd_info(args: argparse.Namespace) -> int:
    with Index(args.index) as index:
        info = index.info()
    if args.json:
        _print_json(asdict(info))
        return EXIT_OK
    print(f"index       {info.path} ({info.snapshot})\nfiles       {info.files}\nchunks      {info.chunks}\n"
          f"embedder    {info.embedder} (dim {info.dim}, {info.embedder_backend})\nindex type  {info.index_type}\n"
          f"chunking    {info.chunk_tokens} tokens, {info.overlap_tokens} overlap\n"
          f"size        {info.size_bytes / 2**20:.1f} MiB")
    for failure in info.failed:
        print(f"failed      {display_path(failure['path'])}: {failure['error']}")
    return EXIT_OK


def _print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=1)
    print()


COMMANDS = {"ingest": cmd_ingest, "search": cmd_search, "ask": cmd_ask, "verify": cmd_verify, "eval": cmd_eval,
            "train": cmd_train, "finetune": cmd_finetune, "ui": cmd_ui, "info": cmd_info}
