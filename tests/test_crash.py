"""kill -9 of a real `rag ingest` at many points: the published index always loads and is correct."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import Index
from rag.store import Snapshot
from tests.conftest import REPO, chunk_set, rag_env

# (what to wait for, extra seconds after it) before the kill
KILL_POINTS = [("start", 0.5), ("start", 2.5), ("staging", 0.0), ("staging", 0.7), ("staging", 1.5),
               ("staging", 2.5), ("staging", 4.0), ("staging", 6.0)]


def _wait_for(index_dir: Path, event: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while event == "staging" and not list(index_dir.glob(".staging-*")):
        if proc.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_at_any_point_keeps_a_correct_index(tmp_path: Path, real_embedder: object) -> None:
    sources = sorted((REPO / "corpus" / "rho-bank").glob("*.md"))[:60]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for src in sources[:20]:
        shutil.copy(src, corpus / src.name)
    index_dir = tmp_path / "idx"
    Index(index_dir, embedder=real_embedder).ingest([corpus], progress=False)  # type: ignore[arg-type]
    before = chunk_set(index_dir)
    for src in sources[20:]:
        shutil.copy(src, corpus / src.name)
    (corpus / sources[0].name).unlink()
    (corpus / sources[1].name).write_text("# Changed policy\n\nOverdraft fees are waived on Sundays.\n")

    outcomes = []
    rng = random.Random(7)
    for event, delay in KILL_POINTS:
        proc = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(index_dir)],
                                env=rag_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(index_dir, event, proc)
        time.sleep(delay + rng.uniform(0, 0.2))
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes.append("finished" if finished else f"killed after {event}+{delay}s")
        after = chunk_set(index_dir)  # loads, and FAISS/SQLite agree with no duplicates
        if finished:
            break
        assert after == before, f"index changed by a killed build ({outcomes[-1]})"
        hits = Index(index_dir, embedder=real_embedder).search("overdraft fees", k=3)  # type: ignore[arg-type]
        assert hits and Snapshot.open(index_dir).chunk_count() == len(before)
    assert sum(o.startswith("killed") for o in outcomes) >= 5, outcomes

    final = subprocess.run([sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(index_dir)],
                           env=rag_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert not list(index_dir.glob(".staging-*"))
    Index(tmp_path / "clean", embedder=real_embedder).ingest([corpus], progress=False)  # type: ignore[arg-type]
    assert chunk_set(index_dir) == chunk_set(tmp_path / "clean")
