"""kill -9 of a real `rag ingest` at 12 points spread over its whole run: the index left behind
is always the previous one or the finished one (never a mix), loads and answers, and a rerun
ends equal to a clean build."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rag import Index
from rag.store import Snapshot
from tests.conftest import REPO, chunk_set, ingest_command, rag_env

KILLS = 12  # 2 while the program starts, 10 while it builds and publishes (each kill is a fresh process)


def _ingest(corpus: Path, index_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(ingest_command(corpus, index_dir), env=rag_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _timed_run(corpus: Path, index_dir: Path) -> tuple[float, float]:
    """Seconds until an uninterrupted run starts its staging folder, and until it ends."""
    start, staged = time.monotonic(), None
    proc = _ingest(corpus, index_dir)
    while proc.poll() is None:
        if staged is None and list(index_dir.glob(".staging-*")):
            staged = time.monotonic() - start
        time.sleep(0.01)
    assert proc.returncode == 0 and staged is not None
    return staged, time.monotonic() - start


@pytest.mark.slow
def test_kill_9_at_any_point_keeps_a_correct_index(tmp_path: Path, real_embedder: Any) -> None:
    sources = sorted((REPO / "corpus" / "rho-bank").glob("*.md"))[:35]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for src in sources[:20]:
        shutil.copy(src, corpus / src.name)
    pristine = tmp_path / "pristine"
    Index(pristine, embedder=real_embedder).ingest([corpus], progress=False)
    before = chunk_set(pristine)
    for src in sources[20:]:  # the run to kill adds 15 files, changes one and deletes one
        shutil.copy(src, corpus / src.name)
    (corpus / sources[0].name).unlink()
    (corpus / sources[1].name).write_text("# Changed policy\n\nOverdraft fees are waived on Sundays.\n")
    Index(tmp_path / "clean", embedder=real_embedder).ingest([corpus], progress=False)
    after = chunk_set(tmp_path / "clean")

    index_dir = tmp_path / "idx"
    shutil.copytree(pristine, index_dir)
    staged, whole = _timed_run(corpus, index_dir)
    assert chunk_set(index_dir) == after
    # Two kills while the program starts (nothing written yet), the rest while it builds and publishes.
    delays = [staged * (n + 0.5) / 2 for n in range(2)] + \
             [staged + (whole - staged) * (n + 0.5) / (KILLS - 2) for n in range(KILLS - 2)]

    outcomes = []
    for n, delay in enumerate(delays):
        shutil.rmtree(index_dir)
        shutil.copytree(pristine, index_dir)
        proc = _ingest(corpus, index_dir)
        time.sleep(delay)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = chunk_set(index_dir)  # loads; FAISS, BM25 and SQLite agree; no duplicates
        assert state in (before, after), f"a mix of the old and new index after a kill at {delay:.1f} s"
        outcomes.append("finished" if finished else "new" if state == after else "old")
        hits = Index(index_dir, embedder=real_embedder).search("overdraft fees", k=3)
        assert hits and Snapshot.open(index_dir).chunk_count() == len(state)
        rerun = subprocess.run(ingest_command(corpus, index_dir), env=rag_env(), capture_output=True, text=True,
                               timeout=300) if n % 6 == 5 else None
        if rerun is not None:  # every sixth kill: the next run completes and equals a clean build
            assert rerun.returncode == 0, rerun.stderr
            assert chunk_set(index_dir) == after and not list(index_dir.glob(".staging-*"))
    assert outcomes.count("old") >= KILLS // 2, outcomes  # most kills landed before the publish
    print(f"kills at {', '.join(f'{d:.2f}' for d in delays)} s of {whole:.2f} s: {outcomes}")
