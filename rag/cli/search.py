"""`rag search`: the chunks nearest a query, once or at a prompt."""

from __future__ import annotations

import argparse
from typing import Any

from rag import threads
from rag.cli.options import index_option, rerank_options
from rag.cli.render import EXIT_OK, prompt_loop, show_hits
from rag.index import Index
from rag.retrieve import MODES, FusionConfig
from rag.settings import Settings


def register(sub: Any, env: Settings) -> None:
    search = sub.add_parser("search", help="find the chunks nearest a query; no QUERY starts a prompt")
    search.add_argument("query", nargs="?", help="the query (omit for an interactive prompt)")
    index_option(search, env)
    search.add_argument("-k", type=int, default=5, help="how many chunks (default 5)")
    search.add_argument("--mode", choices=MODES, default="hybrid", help="ranking: dense, bm25 or hybrid (default)")
    search.add_argument("--rrf-k", type=int, default=FusionConfig.rrf_k, help="RRF constant (default 10)")
    search.add_argument("--dense-weight", type=float, default=FusionConfig.dense_weight, help="hybrid: dense weight")
    search.add_argument("--bm25-weight", type=float, default=FusionConfig.bm25_weight, help="hybrid: BM25 weight")
    rerank_options(search)
    search.add_argument("--rerank", action="store_true", help="rescore the best hits with the cross-encoder reranker")
    search.add_argument("--json", action="store_true", help="print a JSON list")
    search.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fusion = FusionConfig(rrf_k=args.rrf_k, dense_weight=args.dense_weight, bm25_weight=args.bm25_weight)
    threads.use(1)  # one thread answers a single query fastest on small machines (benchmarks/search.py)
    with Index(args.index, fusion=fusion, reranker=args.reranker, rerank_top_n=args.rerank_top_n) as index:
        if args.query is not None:
            show_hits(index.search(args.query, args.k, args.mode, rerank=args.rerank), args.json)
            return EXIT_OK
        print(f"Searching {args.index} ({index.info().chunks} chunks). Empty line or Ctrl-D quits.")
        return prompt_loop("search> ", lambda q: show_hits(index.search(q, args.k, args.mode, rerank=args.rerank),
                                                           args.json))
