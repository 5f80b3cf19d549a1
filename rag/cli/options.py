"""Options several commands share, defined once so their names, defaults and help stay the same."""

from __future__ import annotations

import argparse
from pathlib import Path

from rag.answer import AnswerConfig
from rag.generate.backends import BACKENDS
from rag.generate.weights import DEFAULT_GENERATOR, PACKAGED_GGUF
from rag.index import DEFAULT_INDEX
from rag.rerank import DEFAULT_RERANKER, DEFAULT_TOP_N
from rag.settings import Settings

INDEX_HELP = f"index folder (default: $RAG_INDEX or {DEFAULT_INDEX})"


def default_index(env: Settings) -> str:
    return env.index or str(DEFAULT_INDEX)


def index_option(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument("--index", default=default_index(env), help=INDEX_HELP)


def adapter_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument("--adapter", default=env.generator_adapter,
                        help="LoRA adapter folder from rag finetune ($RAG_ADAPTER; default: the project's "
                             "fine-tuned adapter for the default generator)")
    parser.add_argument("--no-adapter", dest="adapter", action="store_const", const=None,
                        help="the bare base model, without any adapter")


def generator_option(parser: argparse.ArgumentParser, env: Settings, more: str = "") -> None:
    parser.add_argument("--generator", default=env.generator or DEFAULT_GENERATOR,
                        help=f"model: packaged name ({', '.join(PACKAGED_GGUF)}), .gguf file, folder or hub id "
                             f"($RAG_GENERATOR; default {DEFAULT_GENERATOR}){more}")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=env.backend,
                        help="how the generator runs ($RAG_BACKEND; default: openai with --server, else "
                             "transformers; llamacpp needs the [llamacpp] extra)")


def verifier_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verifier", type=Path, help="folder from rag train verifier (default: the shipped one)")


def passages_option(parser: argparse.ArgumentParser, what: str = "passages per question") -> None:
    parser.add_argument("-k", type=int, default=AnswerConfig.k, help=f"{what} (default {AnswerConfig.k})")


def verifier_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    verifier_path_option(parser)
    parser.add_argument("--strict", action="store_true", default=env.strict,
                        help="drop sentences the verifier finds unsupported; abstain if none is left ($RAG_STRICT)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip checking each sentence against its passages")


def reader_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument("--reader", type=Path, default=env.reader,
                        help="folder from rag train reader ($RAG_READER; default: the shipped one)")
    parser.add_argument("--no-reader", dest="use_reader", action="store_false",
                        help="no extractive reader: the generator alone finds, cites and decides")


def rerank_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reranker", default=DEFAULT_RERANKER,
                        help=f"cross-encoder: packaged name, folder or hub id (default {DEFAULT_RERANKER})")
    parser.add_argument("--rerank-top-n", type=int, default=DEFAULT_TOP_N,
                        help=f"how many first-stage hits the reranker rescores (default {DEFAULT_TOP_N})")
