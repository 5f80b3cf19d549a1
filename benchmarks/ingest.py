"""Ingestion speed over the demo corpus, all figures from one run on one machine.

    python benchmarks/ingest.py [--corpus corpus] [--embedder-backend onnx-int8] [--json]

1. full build through the pipeline (load, chunk, embed, store, publish; model load included)
2. the raw embedder on the very same chunk texts (model already loaded, same threads)
3. their ratio (target: the pipeline reaches at least 0.9 of the raw embedder)
4. an incremental rebuild after changing one file, in process with a freshly loaded model
   and as a `rag ingest` subprocess (interpreter start and library imports included),
   each as a fraction of the full build (target: at most 5%)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag import Index, threads  # noqa: E402
from rag.embed import BACKENDS, DEFAULT_BACKEND, make_embedder  # noqa: E402
from rag.ingest.chunker import ChunkConfig, Chunker  # noqa: E402
from rag.ingest.loaders import LOADERS, load  # noqa: E402

CHANGED = "rho-bank/doc_checking_accounts_blue_account_010.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--embedder-backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(args.corpus, corpus)
        result = run(corpus, Path(tmp) / "idx", args.embedder_backend)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)


def embedded_texts(corpus: Path, chunker: Chunker) -> list[str]:
    """What the pipeline embedded (each chunk with its title and heading path), parsed again."""
    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in LOADERS and p.is_file())
    return [c.embedded for path in files for c in chunker.split(load(path.suffix, path.read_bytes()))]


def run(corpus: Path, index_dir: Path, backend: str) -> dict[str, object]:
    log(f"full build ({backend}) ...")
    make_embedder("all-MiniLM-L6-v2", backend).embed(["export once"])  # a first ONNX export is not build time
    embedder = make_embedder("all-MiniLM-L6-v2", backend)
    start = time.perf_counter()
    full = Index(index_dir, embedder=embedder).ingest([corpus])
    full_s = time.perf_counter() - start
    assert full.ok, full.failed

    texts = embedded_texts(corpus, Chunker(embedder.tokenizer, embedder.max_tokens, ChunkConfig()))
    assert len(texts) == full.chunks_total, (len(texts), full.chunks_total)
    log(f"raw embedder on the same {len(texts)} chunks ...")
    threads.use(threads.available())
    start = time.perf_counter()
    embedder.embed(texts)
    raw_s = time.perf_counter() - start

    changed = corpus / CHANGED
    changed.write_text(changed.read_text() + "\n### Is there a benchmark fee?\nNo, benchmarks are free.\n")
    log("incremental rebuild in process (fresh model load) ...")
    start = time.perf_counter()
    inc = Index(index_dir, embedder=make_embedder("all-MiniLM-L6-v2", backend)).ingest([corpus])
    inc_s = time.perf_counter() - start
    assert len(inc.updated) == 1 and inc.chunks_embedded < 10, inc

    changed.write_text(changed.read_text() + "\n### And a second change?\nAlso free.\n")
    log("incremental rebuild as a `rag ingest` subprocess ...")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(index_dir)], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    cli_s = time.perf_counter() - start

    n = full.chunks_embedded
    return {
        "machine": f"{platform.processor() or platform.machine()}, {threads.available()} cores",
        "embedder_backend": backend,
        "files": len(full.added), "chunks": n,
        "full_build_s": round(full_s, 2), "pipeline_chunks_per_s": round(n / full_s, 2),
        "raw_embed_s": round(raw_s, 2), "raw_chunks_per_s": round(n / raw_s, 2),
        "pipeline_vs_raw": round(raw_s / full_s, 3),
        "incremental_chunks_embedded": inc.chunks_embedded,
        "incremental_in_process_s": round(inc_s, 2), "incremental_in_process_fraction": round(inc_s / full_s, 4),
        "incremental_cli_s": round(cli_s, 2), "incremental_cli_fraction": round(cli_s / full_s, 4),
    }


def print_table(r: dict[str, object]) -> None:
    print(f"demo corpus: {r['files']} files, {r['chunks']} chunks ({r['machine']}), {r['embedder_backend']} embedder")
    print(f"full build (pipeline)        {r['full_build_s']:>8} s  {r['pipeline_chunks_per_s']:>7} chunks/s")
    print(f"raw embedder, same chunks    {r['raw_embed_s']:>8} s  {r['raw_chunks_per_s']:>7} chunks/s")
    print(f"pipeline / raw               {r['pipeline_vs_raw']:>8}     (target >= 0.9)")
    print(f"one file changed, in process {r['incremental_in_process_s']:>8} s  "
          f"{100 * float(r['incremental_in_process_fraction']):.2f}% of full (target <= 5%)")  # type: ignore[arg-type]
    print(f"one file changed, rag ingest {r['incremental_cli_s']:>8} s  "
          f"{100 * float(r['incremental_cli_fraction']):.2f}% of full (process start and imports included)")  # type: ignore[arg-type]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
