"""Faults around a real `rag ingest`: a write that fails (file-size limit, full disk, read-only
folder), a writer killed while it holds the lock, two writers at once, and readers running
while a new snapshot is published."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rag import Index, IndexLocked
from rag.store import write_lock
from tests.conftest import REPO, FakeEmbedder, chunk_set, ingest_command, rag_env

RHO = sorted((REPO / "corpus" / "rho-bank").glob("*.md"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any) -> tuple[Path, Path]:
    """A corpus of three documents and its index, built with the real embedder."""
    root = tmp_path_factory.mktemp("faults")
    corpus = root / "corpus"
    corpus.mkdir()
    for src in RHO[:3]:
        shutil.copy(src, corpus)
    Index(root / "idx", embedder=real_embedder).ingest([corpus], progress=False)
    return corpus, root / "idx"


def _copies(built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """The built corpus and index copied, with one more document in the corpus (work to publish)."""
    corpus, index = (shutil.copytree(p, tmp_path / p.name, symlinks=True) for p in built)
    shutil.copy(RHO[3], corpus)
    return corpus, index


def _ingest(corpus: Path, index: Path, preexec: Any = None, wrap: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*wrap, *ingest_command(corpus, index)], env=rag_env(), capture_output=True, text=True,
                          timeout=300, preexec_fn=preexec)


def _check_untouched(index: Path, before: set[tuple[str, int, int, str]], result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, result.stderr
    assert f"cannot write index {index}" in result.stderr and "previous index is still the one in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert chunk_set(index) == before and not list(index.glob(".staging-*"))


def _unshare_works() -> bool:
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True) if shutil.which("unshare") else None
    return probe is not None and probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rm` (user and mount namespaces) "
                                      "to mount a small tmpfs or a read-only folder without root")


@pytest.mark.slow
def test_a_write_past_the_file_size_limit_fails_clearly_and_keeps_the_index(built: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    corpus, index = _copies(built, tmp_path)
    before = chunk_set(index)

    def small_files() -> None:  # the kernel refuses any write past 20 kB (EFBIG), as a full disk refuses (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    _check_untouched(index, before, _ingest(corpus, index, preexec=small_files))
    assert _ingest(corpus, index).returncode == 0 and len(chunk_set(index)) > len(before)  # space back: it works


@pytest.mark.slow
@needs_namespaces
def test_a_full_disk_fails_clearly_and_keeps_the_index(built: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, index = _copies(built, tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    used_kb = sum(f.stat().st_size for f in index.rglob("*") if f.is_file()) // 1024
    # In a private mount namespace: a tmpfs with room for the index and a little more, the index
    # copied in, an ingest that runs out of space, then a search that must still answer.
    script = (f"mount -t tmpfs -o size={used_kb + 48}k tmpfs {full} && cp -a {index}/. {full}/ && "
              f"{sys.executable} -m rag ingest {corpus} --index {full}; echo \"rc=$?\"; "
              f"ls -a {full}; {sys.executable} -m rag search account --index {full} -k 1 --mode bm25")
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=rag_env(), capture_output=True, text=True,
                            timeout=300)
    assert "rc=2" in result.stdout, result.stdout + result.stderr
    assert f"cannot write index {full}" in result.stderr and "No space left on device" in result.stderr
    assert ".staging-" not in result.stdout and " 1. " in result.stdout  # nothing left over; still answers


@pytest.mark.slow
@needs_namespaces
def test_a_read_only_index_folder_fails_clearly_and_keeps_the_index(built: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, index = _copies(built, tmp_path)
    before = chunk_set(index)
    wrap = ("unshare", "-rm", "sh", "-c", f'mount --bind {index} {index} && mount -o remount,bind,ro {index} && '
            'exec "$@"', "sh")
    result = _ingest(corpus, index, wrap=wrap)
    _check_untouched(index, before, result)
    assert "Read-only file system" in result.stderr


@pytest.mark.slow
def test_a_killed_writer_leaves_no_lock_behind(built: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, index = _copies(built, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from rag.store import write_lock\nwith write_lock(Path(sys.argv[1])):\n"
                               "    print('locked', flush=True); time.sleep(600)", str(index)],
                              env=rag_env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    refused = _ingest(corpus, index)
    assert refused.returncode == 2 and f"pid {holder.pid}" in refused.stderr and "--wait" in refused.stderr
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (index / ".lock").read_text() == f"pid {holder.pid}"  # the file stays, naming a dead process ...
    assert _ingest(corpus, index).returncode == 0  # ... but the kernel dropped the lock with the process


def test_a_second_writer_waits_for_the_first_when_asked(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    released = threading.Event()

    def hold() -> None:
        with write_lock(tmp_path / "idx"):
            time.sleep(1.0)
            released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    with pytest.raises(IndexLocked, match="being written by pid"):
        index.ingest([corpus], progress=False)
    report = index.ingest([corpus], progress=False, wait=True)
    assert released.is_set() and report.snapshot == "snap-000001"
    holder.join()


def test_readers_during_rebuilds_never_fail_nor_mix_snapshots(tmp_path: Path, fake: FakeEmbedder) -> None:
    """Every file says which build it belongs to; a search that returned chunks of two builds
    would have read two snapshots at once."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()

    def write(version: int) -> None:
        for n in range(12):
            (corpus / f"doc{n}.md").write_text(f"# Doc {n}\n\nbuild{version} " + "overdraft fee policy " * 30)

    write(0)
    Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False)
    errors: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()

    def read() -> None:
        reader = Index(tmp_path / "idx", embedder=fake)
        while not stop.is_set():
            try:
                for mode in ("dense", "bm25", "hybrid"):
                    builds = {w for hit in reader.search("overdraft fee policy", k=12, mode=mode)
                              for w in hit.text.split() if w.startswith("build")}
                    assert len(builds) == 1, builds
                    seen.update(builds)
            except BaseException as exc:
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    writer = Index(tmp_path / "idx", embedder=fake)
    for version in range(1, 9):
        write(version)
        writer.ingest([corpus], progress=False)
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors, errors[0]
    assert len(seen) >= 3, seen  # the readers did see the index change under them
