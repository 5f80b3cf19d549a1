"""Snapshot store: integrity checks, garbage collection, and what readers see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import Index, IndexCorrupt, IndexMismatch, IndexNotFound
from rag.store import CURRENT, META, SQLITE, VECTORS, Snapshot, collect_garbage
from tests.conftest import FakeEmbedder


@pytest.fixture
def built(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> Path:
    Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False)
    return tmp_path / "idx"


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="rag ingest"):
        Snapshot.open(tmp_path / "nothing")


@pytest.mark.parametrize("name", [SQLITE, VECTORS])
def test_truncated_file_is_named_and_rebuild_suggested(built: Path, name: str) -> None:
    target = Snapshot.open(built).path / name
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(IndexCorrupt, match=rf"{name}.*checksum.*--rebuild"):
        Snapshot.open(built)


def test_tampered_meta_and_version_mismatch(built: Path) -> None:
    meta_file = Snapshot.open(built).path / META
    meta = json.loads(meta_file.read_text())
    meta["format_version"] = 99
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(IndexMismatch, match="format version 99.*--rebuild"):
        Snapshot.open(built)
    meta_file.write_text("{not json")
    with pytest.raises(IndexCorrupt, match="meta.json"):
        Snapshot.open(built)


def test_old_snapshots_and_dead_staging_are_collected(built: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(built, embedder=fake)
    for i in range(3):
        (corpus / f"n{i}.txt").write_text(f"note number {i}")
        index.ingest([corpus], progress=False)
    (built / ".staging-123-456").mkdir()
    (built / "snap-999999").mkdir()  # renamed by a writer that died before swapping CURRENT
    collect_garbage(built)
    names = sorted(p.name for p in built.iterdir() if p.is_dir())
    assert names == ["snap-000003", "snap-000004"]
    assert (built / CURRENT).read_text().strip() == "snap-000004"


def test_reader_follows_new_publishes(built: Path, corpus: Path, fake: FakeEmbedder) -> None:
    reader = Index(built, embedder=fake)
    first = reader.info()
    (corpus / "fresh.txt").write_text("Owls hunt at dusk along the hedgerows.")
    Index(built, embedder=fake).ingest([corpus], progress=False)
    assert reader.info().files == first.files + 1
    assert Path(reader.search("owls hunt dusk hedgerows", k=1)[0].source).name == "fresh.txt"
