"""The generator's CPU runtimes side by side: load time, prompt tokens/s (prefill), first token,
decoding tokens/s, on the prompts `rag ask` builds over the demo corpus.

    python benchmarks/generator_runtime.py [--index indexes/default] [--models Qwen2.5-Coder-0.5B-Instruct]
        [--runtimes fp32 bf16 int8 llamacpp] [--questions 4] [--json]

Runtimes: transformers in float32 (the default backend), bfloat16 and dynamic int8 (torch's
quantize_dynamic over the Linear layers), and llama.cpp on the quantized GGUF itself (the
`llamacpp` backend; skipped with the reason when llama-cpp-python is not installed). One
model load per runtime (timed apart); each question is answered once to warm up first, then
timed. Run it alone: the figures are two cores' worth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import Index, threads
from rag.answer import AnswerConfig
from rag.generate import backends, excerpt, prompt, weights
from rag.generate.backends import Generator, Messages, Sampling, TransformersGenerator

QUESTIONS = ["What is the monthly send limit for verified Everyone Pay accounts?",
             "How do I create a virtual environment in Python?",
             "What is the fee for an early withdrawal from a certificate of deposit?",
             "What does the shopt builtin do?"]


def transformers(dtype: str) -> Callable[[str], Generator]:
    def make(name: str) -> Generator:
        import torch

        made = TransformersGenerator(name)
        model = made.model
        if dtype == "bf16":
            model = model.to(torch.bfloat16)
        elif dtype == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        made.__dict__["model"] = model  # the cached property, replaced
        return made
    return make


def llamacpp(name: str) -> Generator:
    generator = backends.create(backends.GeneratorSpec("llamacpp", name))
    generator.count_tokens([{"role": "user", "content": "load"}])  # loads the model
    return generator


RUNTIMES: dict[str, Callable[[str], Generator]] = {"fp32": transformers("fp32"), "bf16": transformers("bf16"),
                                                   "int8": transformers("int8"), "llamacpp": llamacpp}


def prompts(index: Index, count: int) -> list[Messages]:
    """The messages `rag ask` would send for each question (hybrid top 5, cut to 400 characters each),
    without the reader's one-line evidence hint: the reader is not what is measured here."""
    config = AnswerConfig()
    retriever = index.live("hybrid")
    out = []
    for question in QUESTIONS[:count]:
        hits = [excerpt.narrow(question, h, config.passage_chars or 400, None) for h in retriever.search(question, 5)]
        out.append(prompt.messages_for(question, hits))
    return out


def timed(generator: Generator, messages: Messages, sampling: Sampling) -> dict[str, float]:
    start = time.perf_counter()
    first, text = None, ""
    for piece in generator.stream(messages, sampling):
        first = first or time.perf_counter()
        text += piece
    end = time.perf_counter()
    tokens = generator.count_tokens(messages)
    # The answer's tokens: the prompt with the answer as the assistant's turn, less the prompt (a few
    # template tokens over).
    answered = generator.count_tokens([*messages, {"role": "assistant", "content": text}]) - tokens
    first = first or end
    return {"prompt_tokens": tokens, "first_token_s": first - start, "prefill_tok_s": tokens / (first - start),
            "decode_tok_s": max(answered - 1, 0) / (end - first) if end > first else 0.0, "total_s": end - start}


def measure(runtime: str, name: str, batch: list[Messages]) -> dict[str, Any]:
    began = time.perf_counter()
    try:
        generator = RUNTIMES[runtime](name)
        generator.count_tokens(batch[0])
    except Exception as exc:  # a runtime not installed: reported, the others still run
        return {"runtime": runtime, "model": name, "skipped": f"{type(exc).__name__}: {exc}"}
    load = time.perf_counter() - began
    sampling = Sampling(max_new_tokens=48)
    threads.use(threads.available())
    list(generator.stream(batch[0], Sampling(max_new_tokens=2)))  # warm-up
    rows = [timed(generator, messages, sampling) for messages in batch]
    return {"runtime": runtime, "model": name, "load_s": round(load, 2)} | {
        key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}


def isolated(runtime: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """`measure` in a process of its own: each runtime starts from the same memory, and one that
    crashes (torch's dynamic int8 can) is reported, not the end of the run."""
    done = subprocess.run([sys.executable, __file__, "--index", args.index, "--questions", str(args.questions),
                           "--one", runtime, name], capture_output=True, text=True)
    if done.returncode != 0:
        return {"runtime": runtime, "model": name,
                "skipped": f"exit status {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1][:120]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="indexes/default")
    parser.add_argument("--models", nargs="+", default=[weights.DEFAULT_GENERATOR])
    parser.add_argument("--runtimes", nargs="+", choices=sorted(RUNTIMES), default=list(RUNTIMES))
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("RUNTIME", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # one runtime in this process (a child of the run below)
        with Index(args.index) as index:
            batch = prompts(index, args.questions)
        print(json.dumps(measure(args.one[0], args.one[1], batch)))
        return
    rows = [isolated(runtime, name, args) for name in args.models for runtime in args.runtimes]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| model | runtime | load s | prompt tokens | prefill tok/s | first token s | decode tok/s | total s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['model']} | {r['runtime']} | skipped: {r['skipped']} | | | | | |")
        else:
            print(f"| {r['model']} | {r['runtime']} | {r['load_s']} | {r['prompt_tokens']:.0f} "
                  f"| {r['prefill_tok_s']:.0f} | {r['first_token_s']:.2f} | {r['decode_tok_s']:.1f} "
                  f"| {r['total_s']:.2f} |")


if __name__ == "__main__":
    main()
