"""`rag ingest --engine ray` on a local Ray: the same index as the local engine, first build and
incremental (changed, deleted, added, broken files), and the CLI end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import Index
from tests.conftest import FIXTURES, REPO, chunk_set, ingest_command, rag_env

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module's runs (an ingest reuses a Ray it finds running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _same(a: Path, b: Path) -> None:
    assert chunk_set(a) == chunk_set(b)
    left, right = Index(a).info(), Index(b).info()
    assert (left.files, left.chunks, left.failed) == (right.files, right.chunks, right.failed)


@pytest.mark.slow
def test_ray_engine_builds_the_same_index_as_the_local_one(tmp_path: Path, corpus: Path, local_ray: None) -> None:
    for name in ("latin1.txt", "truncated.pdf"):
        shutil.copy(FIXTURES / name, corpus / name)
    ray_index, local_index = tmp_path / "ray", tmp_path / "local"
    report = Index(ray_index).ingest([corpus], engine="ray", progress=False)
    assert len(report.added) == 6 and {Path(f["path"]).name for f in report.failed} == {"latin1.txt", "truncated.pdf"}
    Index(local_index).ingest([corpus], progress=False)
    _same(ray_index, local_index)

    (corpus / "sample.md").write_text("# Changed\n\nThe greenhouse now opens at dawn.\n")
    (corpus / "sample.txt").unlink()
    os.utime(corpus / "sample.rst", ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, not changed
    (corpus / "latin1.txt").write_text("Fixed: now valid UTF-8.\n")
    shutil.copy(REPO / "corpus" / "rho-bank" / sorted(p.name for p in (REPO / "corpus" / "rho-bank").iterdir())[0],
                corpus / "bank.md")
    report = Index(ray_index).ingest([corpus], engine="ray", progress=False)
    assert sorted(Path(p).name for p in report.added) == ["bank.md", "latin1.txt"]
    assert [Path(p).name for p in report.updated] == ["sample.md"] and report.unchanged == 4
    assert [Path(p).name for p in report.removed] == ["sample.txt"]
    assert report.chunks_embedded == sum(1 for c in chunk_set(ray_index) if Path(c[0]).name in
                                         ("bank.md", "latin1.txt", "sample.md"))  # only new and changed files
    Index(tmp_path / "clean").ingest([corpus], progress=False)
    _same(ray_index, tmp_path / "clean")
    assert not list(ray_index.glob(".shards-*")) and not list(ray_index.glob(".staging-*"))


@pytest.mark.slow
def test_rag_ingest_engine_ray_starts_a_local_ray(tmp_path: Path, corpus: Path) -> None:
    result = subprocess.run(ingest_command(corpus, tmp_path / "idx", "--engine", "ray", "--json"), env=rag_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(json.loads(result.stdout)["added"]) == 6
    Index(tmp_path / "local").ingest([corpus], progress=False)
    _same(tmp_path / "idx", tmp_path / "local")
