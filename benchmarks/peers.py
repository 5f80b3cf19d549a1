"""This project against LangChain and LlamaIndex on the demo corpus: one run, one machine, one
after another, the same embedding model (the packaged all-MiniLM-L6-v2) and the same chunk
size in tokens (200, overlap 32, counted with the model's own tokenizer).

    pip install -e '.[peers]'      # pinned LangChain and LlamaIndex packages
    python benchmarks/peers.py [--corpus corpus] [--queries 50] [--json]

For each system:
  full build      load, split, embed and index a copy of the corpus in process (model load
                  included); chunks and chunks/s end to end
  one file changed  the incremental path each documents (LangChain: `index()` with a SQL
                  record manager, cleanup="incremental"; LlamaIndex: `IngestionPipeline` with
                  a docstore and a vector store, upserts; this project: a fresh `rag ingest`
                  process, interpreter start and imports included), its time, and the stale
                  vectors it leaves (vectors whose text is no longer in the corpus, or beyond
                  the count a fresh build gives)
  query latency   p50/p95 of single queries in process (top 5; this project's hybrid search
                  with one thread, as `rag search` runs it)

Each framework's pipeline is written as its documentation shows. Options they need here:
offline use (HF_HUB_OFFLINE=1 and the model's local folder as model_name); LangChain reads
.md and .txt with TextLoader, .html with BSHTMLLoader and .pdf with PyPDFLoader (pypdf);
LlamaIndex's SimpleDirectoryReader reads .pdf with its default PDFReader (pypdf) and is given
a plain-text reader for .md and .html, whose default readers split files into sections and
drop headings (filename_as_id=True gives documents the stable ids its docstore needs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from search import QUERIES  # noqa: E402  (benchmarks/search.py: the same ten questions)

from rag import Index, models, threads  # noqa: E402
from rag.ingest.chunker import ChunkConfig  # noqa: E402

CHANGED = "rho-bank/doc_checking_accounts_blue_account_010.md"
ADDED_TEXT = "\n\n### Is there a benchmark fee?\nNo, benchmarks are free of charge.\n"
CHUNKING = ChunkConfig()
MODEL = str(models.resolve("all-MiniLM-L6-v2"))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def latencies(search: Callable[[str], Any], n: int) -> dict[str, float]:
    search("warm up")
    times = []
    for i in range(n):
        start = time.perf_counter()
        search(QUERIES[i % len(QUERIES)])
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {"query_p50_ms": round(statistics.median(times), 1), "query_p95_ms": round(times[int(0.95 * (n - 1))], 1)}


def change_one_file(corpus: Path) -> None:
    path = corpus / CHANGED
    path.write_text(path.read_text() + ADDED_TEXT)


# --- LangChain ------------------------------------------------------------------------------


def langchain_documents(corpus: Path) -> list[Any]:
    from langchain_community.document_loaders import BSHTMLLoader, DirectoryLoader, PyPDFLoader, TextLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import AutoTokenizer

    docs = []
    for pattern, loader in (("**/*.md", TextLoader), ("**/*.txt", TextLoader), ("**/*.html", BSHTMLLoader),
                            ("**/*.pdf", PyPDFLoader)):
        docs += DirectoryLoader(str(corpus), glob=pattern, loader_cls=loader, silent_errors=True).load()
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        AutoTokenizer.from_pretrained(MODEL), chunk_size=CHUNKING.chunk_tokens, chunk_overlap=CHUNKING.overlap_tokens)
    return splitter.split_documents(docs)


def run_langchain(corpus: Path, work: Path, n_queries: int) -> dict[str, Any]:
    from langchain_classic.indexes import SQLRecordManager, index
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    def build() -> Any:
        embeddings = HuggingFaceEmbeddings(model_name=MODEL, encode_kwargs={"normalize_embeddings": True})
        return FAISS.from_documents(langchain_documents(corpus), embeddings)

    store, full_s = timed(build)
    chunks = store.index.ntotal
    out = {"chunks": chunks, "full_build_s": round(full_s, 1), "chunks_per_s": round(chunks / full_s, 1)}
    out |= latencies(lambda q: store.similarity_search(q, k=5), n_queries)

    # The incremental path: index() keeps a record of what was written, by source and content hash.
    embeddings = HuggingFaceEmbeddings(model_name=MODEL, encode_kwargs={"normalize_embeddings": True})
    live = FAISS.from_texts(["seed"], embeddings)
    live.delete([live.index_to_docstore_id[0]])
    manager = SQLRecordManager("faiss/demo", db_url=f"sqlite:///{work / 'records.sqlite'}")
    manager.create_schema()
    index(langchain_documents(corpus), manager, live, cleanup="incremental", source_id_key="source")
    change_one_file(corpus)
    result, update_s = timed(lambda: index(langchain_documents(corpus), manager, live, cleanup="incremental",
                                           source_id_key="source"))
    current = langchain_documents(corpus)
    texts = {d.page_content for d in current}
    stored = [live.docstore.search(i).page_content for i in live.index_to_docstore_id.values()]
    out |= {"update_s": round(update_s, 2), "update_added": result["num_added"],
            "stale_vectors": sum(text not in texts for text in stored) + max(0, len(stored) - len(current))}
    return out


# --- LlamaIndex -----------------------------------------------------------------------------


def llama_reader(corpus: Path) -> Any:
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.readers.base import BaseReader
    from llama_index.core.schema import Document

    class PlainText(BaseReader):
        def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
            return [Document(text=Path(file).read_text(errors="replace"), metadata=extra_info or {})]

    return SimpleDirectoryReader(str(corpus), recursive=True, filename_as_id=True,
                                 required_exts=[".md", ".txt", ".html", ".pdf"],
                                 file_extractor={".md": PlainText(), ".html": PlainText()})


def llama_splitter() -> Any:
    from llama_index.core.node_parser import SentenceSplitter
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    return SentenceSplitter(chunk_size=CHUNKING.chunk_tokens, chunk_overlap=CHUNKING.overlap_tokens,
                            tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False))


def run_llamaindex(corpus: Path, work: Path, n_queries: int) -> dict[str, Any]:
    from llama_index.core import Settings, VectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.core.vector_stores import SimpleVectorStore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    Settings.llm = None  # retrieval only: no language model

    def build() -> Any:
        Settings.embed_model = HuggingFaceEmbedding(model_name=MODEL)
        return VectorStoreIndex.from_documents(llama_reader(corpus).load_data(), transformations=[llama_splitter()])

    built, full_s = timed(build)
    chunks = len(built.vector_store.data.embedding_dict)
    out = {"chunks": chunks, "full_build_s": round(full_s, 1), "chunks_per_s": round(chunks / full_s, 1)}
    retriever = built.as_retriever(similarity_top_k=5)
    out |= latencies(retriever.retrieve, n_queries)

    # The incremental path: a pipeline with a docstore upserts documents by id and content hash.
    vectors = SimpleVectorStore()
    pipeline = IngestionPipeline(transformations=[llama_splitter(), Settings.embed_model],
                                 docstore=SimpleDocumentStore(), vector_store=vectors)
    pipeline.run(documents=llama_reader(corpus).load_data())
    change_one_file(corpus)
    nodes, update_s = timed(lambda: pipeline.run(documents=llama_reader(corpus).load_data()))
    fresh = IngestionPipeline(transformations=[llama_splitter()]).run(documents=llama_reader(corpus).load_data())
    stored = len(vectors.data.embedding_dict)
    out |= {"update_s": round(update_s, 2), "update_added": len(nodes),
            "stale_vectors": max(0, stored - len(fresh))}
    return out


# --- this project ---------------------------------------------------------------------------


def run_ours(corpus: Path, work: Path, n_queries: int) -> dict[str, Any]:
    report, full_s = timed(lambda: Index(work / "idx").ingest([corpus], progress=False))
    chunks = report.chunks_total
    out = {"chunks": chunks, "full_build_s": round(full_s, 1), "chunks_per_s": round(chunks / full_s, 1)}
    index = Index(work / "idx")
    threads.use(1)
    out |= latencies(lambda q: index.search(q, k=5), n_queries)
    threads.use(threads.available())

    change_one_file(corpus)
    cli = [sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(work / "idx"), "--json"]
    done, update_s = timed(lambda: subprocess.run(cli, check=True, capture_output=True, text=True,
                                                  env={**os.environ, "PYTHONPATH": str(REPO)}))
    updated = json.loads(done.stdout)
    fresh = Index(work / "fresh").ingest([corpus], progress=False)
    snapshot = Index(work / "idx").snapshot()
    stored = {row[0] for row in snapshot.db.execute("SELECT text FROM chunks")}
    current = {row[0] for row in Index(work / "fresh").snapshot().db.execute("SELECT text FROM chunks")}
    out |= {"update_s": round(update_s, 2), "update_added": updated["chunks_embedded"],
            "stale_vectors": len(stored - current) + max(0, updated["chunks_total"] - fresh.chunks_total)}
    return out


SYSTEMS = {"langchain": run_langchain, "llamaindex": run_llamaindex, "rag": run_ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--queries", type=int, default=50, help="single queries timed per system")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": f"{threads.available()} cores", "chunk_tokens": CHUNKING.chunk_tokens,
                               "overlap_tokens": CHUNKING.overlap_tokens}
    threads.use(threads.available())
    for name in args.systems:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus"
            shutil.copytree(args.corpus, corpus)
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = SYSTEMS[name](corpus, Path(tmp), args.queries)
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    if "rag" in results:
        ours = results["rag"]
        peers = [results[n] for n in ("langchain", "llamaindex") if n in results]
        if peers:
            results["speedup_vs_faster_peer"] = round(ours["chunks_per_s"] / max(p["chunks_per_s"] for p in peers), 2)
        results["update_fraction_of_full_build"] = round(ours["update_s"] / ours["full_build_s"], 4)
    print(json.dumps(results, indent=1) if args.json else table(results))


def table(results: dict[str, Any]) -> str:
    names = [n for n in SYSTEMS if n in results]
    columns = ["chunks", "full_build_s", "chunks_per_s", "update_s", "update_added", "stale_vectors",
               "query_p50_ms", "query_p95_ms"]
    lines = ["| system | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {n} | " + " | ".join(str(results[n][c]) for c in columns) + " |" for n in names]
    for key in ("speedup_vs_faster_peer", "update_fraction_of_full_build"):
        if key in results:
            lines.append(f"{key}: {results[key]}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
