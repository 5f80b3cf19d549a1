"""`rag train reranker|verifier|reader` (the project's cross-encoder models) and `rag finetune` (the
generator's LoRA adapter)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rag.cli.render import EXIT_OK, print_json
from rag.settings import Settings
from rag.training.generator import FinetuneConfig


def register(sub: Any, env: Settings) -> None:
    train = sub.add_parser("train", help="train the project's own models")
    model = train.add_subparsers(dest="what", required=True)
    reranker = model.add_parser("reranker", help="fine-tune a cross-encoder reranker on HaluEval QA groups")
    _crossencoder_training_options(reranker, "reranker", "(last 1000 rows held out)", "questions")
    verifier = model.add_parser("verifier", help="fine-tune the answer verifier (a cross-encoder) on HaluEval QA")
    _crossencoder_training_options(verifier, "verifier", "(last 1000 rows held out, the 500 before calibrate)", "rows")
    verifier.add_argument("--howto", type=int, default=0, help="add N synthetic how-to pages' pairs (default 0)")
    verifier.add_argument("--tables", type=int, default=0, help="add N synthetic table questions' pairs (default 0)")
    reader = model.add_parser("reader", help="fine-tune the extractive reader (a span head) on HaluEval QA; "
                                             "a rerun resumes from out/checkpoints")
    _crossencoder_training_options(reader, "reader", "(last 1000 rows held out)", "rows")
    reader.add_argument("--tables", type=int, default=0, help="add N synthetic table questions (default 0)")
    reader.add_argument("--init", type=Path, help="start from this reader folder instead of the bare base model")
    reader.add_argument("--learning-rate", type=float, help="peak learning rate (default 1e-4)")
    train.set_defaults(func=run_train)

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
    tune.add_argument("--targets", choices=["answers", "sentences"], default=FinetuneConfig.targets,
                      help="what the model learns to write: the right answer as written, or written out as a "
                           "complete sentence by the base model first (default %(default)s)")
    tune.add_argument("--json", action="store_true", help="print what was recorded as one JSON object")
    tune.set_defaults(func=run_finetune)


def _crossencoder_training_options(parser: argparse.ArgumentParser, kind: str, held_out: str, unit: str) -> None:
    parser.add_argument("--data", type=Path, required=True, help=f"HaluEval QA JSONL {held_out}")
    parser.add_argument("--out", type=Path, required=True, help=f"folder to write the weights and {kind}.json into")
    parser.add_argument("--base", default="all-MiniLM-L6-v2", help="base model: packaged name, folder or hub id")
    parser.add_argument("--limit", type=int, help=f"train on the first N {unit} only")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: every core)")
    parser.add_argument("--json", action="store_true", help="print what was recorded as one JSON object")


def run_train(args: argparse.Namespace) -> int:
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
                base=args.base, limit=args.limit, epochs=args.epochs, seed=args.seed, threads=args.threads,
                howto=args.howto, tables=args.tables), progress)
        else:
            record = reranker.train(args.data, args.out, reranker.TrainConfig(
                base=args.base, limit=args.limit, epochs=args.epochs, seed=args.seed, threads=args.threads), progress)
    if args.json:
        print_json(record)
    else:
        print(f"wrote {args.out}: {record['steps']} steps, final loss {record['final_loss']}, "
              f"{record['train_s']} s")
    return EXIT_OK


def run_finetune(args: argparse.Namespace) -> int:
    from rag.training import generator

    config = FinetuneConfig(base=args.base, limit=args.limit, epochs=args.epochs, max_steps=args.max_steps,
                            lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                            lora_layers=args.lora_layers or None, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, grad_accum=args.grad_accum, eval_steps=args.eval_steps,
                            save_steps=args.eval_steps, device=args.device, seed=args.seed,
                            reader=None if args.reader == "none" else args.reader, hint_noise=args.hint_noise,
                            targets=args.targets)
    record = generator.finetune(args.data, args.out, config)
    if args.json:
        print_json(record)
    else:
        print(f"wrote {args.out}: {record['train_records']} records, {record['steps']} steps, "
              f"train loss {record['train_loss']}, dev loss {record['dev_loss']}, {record['train_s']} s")
    return EXIT_OK

