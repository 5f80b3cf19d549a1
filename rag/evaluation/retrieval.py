"""Retrieval evaluation on SQuAD or BEIR data: nDCG@10, Recall@1/5/10/20, MRR@10, latency.

Documents are written out as text files and indexed by the normal ingest pipeline,
so the evaluation measures exactly what users run (chunking included). A document's
rank is the rank of its best chunk.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag import metrics, threads
from rag.embed import Embedder
from rag.evaluation.report import Report, config_json
from rag.fsutil import read_jsonl
from rag.index import Index
from rag.rerank import DEFAULT_RERANKER, DEFAULT_TOP_N
from rag.retrieve import MODES

log = logging.getLogger(__name__)
CUTOFFS = (1, 5, 10, 20)
CHUNKS_PER_DOC = 3  # chunks fetched per document rank needed, so that 20 distinct documents come back


@dataclass(frozen=True)
class Dataset:
    name: str
    corpus: dict[str, str]  # document id -> text
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {document id: relevance > 0}
    answers: dict[str, list[str]] = field(default_factory=dict)  # query id -> gold answers, where known


def load_squad(path: Path, limit: int | None = None) -> Dataset:
    """Each paragraph is a document, each question a query whose one relevant document is its
    paragraph. `limit` keeps whole articles, in order, until that many questions are reached."""
    data = json.loads(Path(path).read_text())["data"]
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    answers: dict[str, list[str]] = {}
    for a, article in enumerate(data):
        if limit is not None and len(queries) >= limit:
            break
        for p, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"a{a}p{p}"
            corpus[doc_id] = paragraph["context"]
            for qa in paragraph["qas"]:
                queries[qa["id"]] = qa["question"]
                qrels[qa["id"]] = {doc_id: 1}
                answers[qa["id"]] = list(dict.fromkeys(a["text"] for a in qa["answers"]))
    return Dataset(Path(path).name, corpus, queries, qrels, answers)


def load_beir(folder: Path, limit: int | None = None, split: str = "test") -> Dataset:
    """BEIR layout: corpus.jsonl ({_id, title, text}), queries.jsonl ({_id, text}), qrels/SPLIT.tsv.
    `limit` keeps the first queries that have judgements; the corpus stays whole."""
    folder = Path(folder)
    corpus = {}
    for row in read_jsonl(folder / "corpus.jsonl"):
        title = (row.get("title") or "").strip()
        corpus[str(row["_id"])] = f"{title}\n\n{row['text']}" if title else row["text"]
    all_queries = {str(row["_id"]): row["text"] for row in read_jsonl(folder / "queries.jsonl", ("text",))}
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    ids = [q for q in all_queries if q in qrels][:limit]
    return Dataset(folder.name, corpus, {q: all_queries[q] for q in ids}, {q: qrels[q] for q in ids})


def load_halueval(path: Path, limit: int | None = None, dev_rows: int = 1000) -> Dataset:
    """HaluEval QA as retrieval, on the last `dev_rows` rows only (the project's own dev split,
    kept out of all training): each record's knowledge is a document, its question the query,
    its right answer the gold answer."""
    rows = read_jsonl(Path(path), ("knowledge", "question"))[-dev_rows:][:limit]
    corpus: dict[str, str] = {}
    by_text: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    answers: dict[str, list[str]] = {}
    for n, row in enumerate(rows):
        doc_id = by_text.setdefault(row["knowledge"], f"k{len(by_text)}")
        corpus[doc_id] = row["knowledge"]
        queries[f"q{n}"] = row["question"]
        qrels[f"q{n}"] = {doc_id: 1}
        answers[f"q{n}"] = [row["right_answer"]] if row.get("right_answer") else []
    return Dataset(f"{Path(path).name} (last {dev_rows} rows)", corpus, queries, qrels, answers)


def load(fmt: str, path: Path, limit: int | None = None, split: str = "test") -> Dataset:
    loaders = {"squad": lambda: load_squad(path, limit), "beir": lambda: load_beir(path, limit, split),
               "halueval": lambda: load_halueval(path, limit)}
    if fmt not in loaders:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {', '.join(loaders)}")
    return loaders[fmt]()


# --- metrics ----------------------------------------------------------------------------------


def ndcg(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (rel) and log2 discounts, as in BEIR's evaluation."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sum(rel / math.log2(i + 2) for i, rel in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return dcg / ideal if ideal else 0.0


def recall(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def mrr(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    return next((1.0 / (i + 1) for i, doc in enumerate(ranked[:k]) if doc in relevant), 0.0)


def score_query(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    out = {"ndcg@10": ndcg(ranked, relevant, 10), "mrr@10": mrr(ranked, relevant, 10)}
    out |= {f"recall@{k}": recall(ranked, relevant, k) for k in CUTOFFS}
    return out


# --- running ----------------------------------------------------------------------------------


def build_index(dataset: Dataset, workdir: Path, embedder: Embedder | None = None, progress: bool | None = None,
                **index_options: Any) -> tuple[Index, dict[str, str]]:
    """Write the corpus as files under workdir/docs and ingest it into workdir/index (incrementally,
    so a kept workdir is reused). Returns the index (made with `index_options`, e.g. a reranker)
    and a map from file path to document id."""
    docs = workdir / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    by_path = {}
    for n, (doc_id, text) in enumerate(dataset.corpus.items()):
        path = docs / f"{n:08d}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        by_path[str(path.absolute())] = doc_id
    index = Index(workdir / "index", embedder=embedder, **index_options)
    index.ingest([docs], progress=progress)
    return index, by_path


def evaluate(index: Index, by_path: dict[str, str], dataset: Dataset, modes: list[str],
             progress: bool | None = None, n_threads: int = 1) -> dict[str, dict[str, float]]:
    """{mode: {metric: mean over queries, plus latency_p50_ms and latency_p95_ms}}.
    A mode is dense, bm25 or hybrid, optionally followed by "+rerank"."""
    results = {}
    threads.use(n_threads)
    for mode in modes:
        first, _, rerank = mode.partition("+")
        if rerank not in ("", "rerank"):
            raise ValueError(f"unknown evaluation mode {mode!r}: expected MODE or MODE+rerank")
        index.search("warm up", k=1, mode=first, rerank=bool(rerank))  # model loads are not query latency
        totals: dict[str, float] = {}
        latencies = []
        for qid, text in tqdm(dataset.queries.items(), desc=mode, unit="query", disable=_disabled(progress)):
            start = time.perf_counter()
            hits = index.search(text, k=CHUNKS_PER_DOC * max(CUTOFFS), mode=first, rerank=bool(rerank))
            latencies.append(time.perf_counter() - start)
            ranked = list(dict.fromkeys(by_path[h.source] for h in hits if h.source in by_path))
            for name, value in score_query(ranked, dataset.qrels[qid]).items():
                totals[name] = totals.get(name, 0.0) + value
        n = max(1, len(dataset.queries))
        results[mode] = {name: round(value / n, 4) for name, value in totals.items()}
        in_ms = [1000 * t for t in latencies]
        results[mode] |= {"latency_p50_ms": metrics.percentile(in_ms, 50, 2) or 0.0,
                          "latency_p95_ms": metrics.percentile(in_ms, 95, 2) or 0.0}
    return results


def _disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


COLUMNS = ["ndcg@10", "recall@1", "recall@5", "recall@10", "recall@20", "mrr@10", "latency_p50_ms", "latency_p95_ms"]


def markdown_table(results: dict[str, dict[str, float]], fmt: Callable[[float], str] = "{:.4f}".format) -> str:
    lines = ["| mode | " + " | ".join(COLUMNS) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    lines += [f"| {mode} | " + " | ".join(fmt(row[c]) for c in COLUMNS) + " |" for mode, row in results.items()]
    return "\n".join(lines)


@dataclass(frozen=True)
class RetrievalEval:
    """`rag eval retrieval`: what to evaluate, on what."""

    dataset: Path
    format: str  # squad, beir or halueval
    modes: tuple[str, ...] = MODES  # a mode may end in "+rerank"
    limit: int | None = None
    split: str = "test"  # BEIR qrels
    cache: Path | None = None  # keep the documents and index here, reused next time
    reranker: str = DEFAULT_RERANKER
    rerank_top_n: int = DEFAULT_TOP_N


def run(config: RetrievalEval) -> Report:
    dataset = load(config.format, config.dataset, config.limit, config.split)
    note = f"{len(dataset.corpus)} documents, {len(dataset.queries)} queries."
    log.info("%s: %s", dataset.name, note)
    with tempfile.TemporaryDirectory() as tmp:
        index, by_path = build_index(dataset, config.cache or Path(tmp), reranker=config.reranker,
                                     rerank_top_n=config.rerank_top_n)
        with index:
            results = evaluate(index, by_path, dataset, list(config.modes))
    return Report("retrieval", f"Retrieval: {dataset.name}", config_json(config), results, markdown_table(results),
                  note)
