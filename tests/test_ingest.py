"""Incremental ingestion with a fast fake embedder: what gets embedded, kept, removed, reported."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag import Index, IndexLocked, IndexMismatch
from rag.ingest import local
from rag.ingest.chunker import ChunkConfig
from rag.store import Snapshot, write_lock
from tests.conftest import BROKEN, FIXTURES, GOOD, FakeEmbedder, chunk_set


def test_first_build_indexes_every_format(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    told: list[tuple[int, int]] = []
    report = index.ingest([corpus], progress=False, on_progress=lambda n, total: told.append((n, total)))
    assert sorted(Path(p).name for p in report.added) == sorted(GOOD)
    assert told == [(n, len(GOOD)) for n in range(1, len(GOOD) + 1)]  # a web UI's progress bar, bars off
    assert report.ok and report.chunks_total == report.chunks_embedded == len(fake.embedded) > 0
    hits = index.search("Skerry Point lighthouse keeper wicks", k=3)
    assert Path(hits[0].source).name == "sample.txt"
    doc = index.snapshot().document_text(hits[0].source)
    assert doc[hits[0].start : hits[0].end] == hits[0].text


def test_unchanged_files_embed_nothing_and_publish_nothing(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    first = index.ingest([corpus], progress=False)
    fake.embedded.clear()
    again = index.ingest([corpus], progress=False)
    assert again.chunks_embedded == 0 and fake.embedded == []
    assert again.unchanged == len(GOOD) and again.snapshot is None
    assert again.chunks_total == first.chunks_total


def test_touched_but_identical_file_is_not_reembedded(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    fake.embedded.clear()
    os.utime(corpus / "sample.md", ns=(1, 1))
    report = index.ingest([corpus], progress=False)
    assert report.unchanged == len(GOOD) and fake.embedded == []
    assert index.snapshot().manifest()[str(corpus / "sample.md")].mtime_ns == 1


def test_changing_one_file_reembeds_only_its_chunks(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    before = chunk_set(tmp_path / "idx")
    fake.embedded.clear()
    (corpus / "sample.txt").write_text("Lighthouse lamps now run on electricity and need no keeper.\n")
    report = index.ingest([corpus], progress=False)
    assert [Path(p).name for p in report.updated] == ["sample.txt"]
    assert report.chunks_embedded == len(fake.embedded) == 1
    after = chunk_set(tmp_path / "idx")
    def others(chunks: set[tuple[str, int, int, str]]) -> set[tuple[str, int, int, str]]:
        return {c for c in chunks if not c[0].endswith("sample.txt")}

    assert others(before) == others(after)
    assert any("electricity" in c[3] for c in after)


def test_deleted_file_loses_its_chunks(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    (corpus / "sample.html").unlink()
    report = index.ingest([corpus], progress=False)
    assert [Path(p).name for p in report.removed] == ["sample.html"]
    assert report.chunks_embedded == 0
    assert not any(c[0].endswith("sample.html") for c in chunk_set(tmp_path / "idx"))


def test_files_outside_the_scanned_roots_are_kept(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(FIXTURES / "sample.rst", other / "extra.rst")
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus, other], progress=False)
    report = index.ingest([corpus], progress=False)
    assert report.removed == []
    assert str(other / "extra.rst") in index.snapshot().manifest()


def test_failures_of_other_roots_are_kept(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(FIXTURES / "latin1.txt", broken / "latin1.txt")
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([broken], progress=False)
    index.ingest([corpus], progress=False)
    assert [Path(f["path"]).name for f in index.info().failed] == ["latin1.txt"]
    shutil.copy(FIXTURES / "sample.txt", broken / "latin1.txt")  # fixed by the user
    index.ingest([broken], progress=False)
    assert index.info().failed == []


def test_incremental_result_equals_a_clean_build(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    (corpus / "sample.md").write_text("# Changed\n\nEntirely new text about owls.\n")
    (corpus / "sample.rst").unlink()
    shutil.copy(FIXTURES / "sample.txt", corpus / "copy.txt")
    index.ingest([corpus], progress=False)
    Index(tmp_path / "clean", embedder=fake).ingest([corpus], progress=False)
    assert chunk_set(tmp_path / "idx") == chunk_set(tmp_path / "clean")


def test_bad_inputs_are_reported_and_the_rest_indexed(tmp_path: Path, corpus: Path, fake: FakeEmbedder,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BROKEN:
        shutil.copy(FIXTURES / name, corpus / name)
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the corpus")
    (corpus / "escape.txt").symlink_to(outside)
    (corpus / "dangling.md").symlink_to(tmp_path / "missing.md")
    (corpus / "big.txt").write_text("large " * 400_000)
    os.mkfifo(corpus / "pipe.txt")  # reading it would block forever
    (corpus / "locked.txt").write_text("cannot be read")
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    report = Index(tmp_path / "idx", embedder=fake).ingest([corpus], max_file_bytes=1_000_000, progress=False)
    errors = {Path(f["path"]).name: f["error"] for f in report.failed}
    for name, reason in BROKEN.items():
        assert reason in errors[name], (name, errors.get(name))
    assert "outside the corpus" in errors["escape.txt"]
    assert "broken symbolic link" in errors["dangling.md"]
    assert "limit" in errors["big.txt"]
    assert "not a regular file" in errors["pipe.txt"]
    assert "Permission denied" in errors["locked.txt"]
    assert sorted(Path(p).name for p in report.added) == sorted(GOOD)
    assert not report.ok
    assert Index(tmp_path / "idx", embedder=fake).info().failed == report.failed


def test_a_file_that_breaks_keeps_its_previous_version(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    before = {c for c in chunk_set(tmp_path / "idx") if c[0].endswith("sample.txt")}
    (corpus / "sample.txt").write_bytes(b"now \xff\xfe broken")
    report = index.ingest([corpus], progress=False)
    assert "UTF-8" in report.failed[0]["error"] and report.updated == []
    assert {c for c in chunk_set(tmp_path / "idx") if c[0].endswith("sample.txt")} == before


def test_crash_mid_build_leaves_previous_index_intact(tmp_path: Path, corpus: Path, tokenizer: object,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "EMBED_GROUP", 16)  # several groups, so the crash comes after real work
    good = FakeEmbedder(tokenizer)
    Index(tmp_path / "idx", embedder=good).ingest([corpus], progress=False)
    published = Snapshot.open(tmp_path / "idx").path
    before = chunk_set(tmp_path / "idx")
    for i in range(40):  # enough new chunks for several embedding groups
        (corpus / f"new{i}.txt").write_text(f"Note {i}. " + "The quick brown fox jumps over the dog. " * 60)
    crashing = FakeEmbedder(tokenizer, fail_on_call=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Index(tmp_path / "idx", embedder=crashing).ingest([corpus], progress=False)
    assert Snapshot.open(tmp_path / "idx").path == published
    assert chunk_set(tmp_path / "idx") == before
    assert not list((tmp_path / "idx").glob(".staging-*"))
    report = Index(tmp_path / "idx", embedder=good).ingest([corpus], progress=False)
    assert len(report.added) == 40
    Index(tmp_path / "clean", embedder=good).ingest([corpus], progress=False)
    assert chunk_set(tmp_path / "idx") == chunk_set(tmp_path / "clean")


def test_second_writer_is_refused_with_a_clear_message(tmp_path: Path, corpus: Path, fake: FakeEmbedder) -> None:
    with write_lock(tmp_path / "idx"), pytest.raises(IndexLocked, match=rf"being written by pid {os.getpid()}"):
        Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False)


def test_other_embedder_or_chunking_asks_for_rebuild(tmp_path: Path, corpus: Path, tokenizer: object) -> None:
    Index(tmp_path / "idx", embedder=FakeEmbedder(tokenizer)).ingest([corpus], progress=False)
    other = FakeEmbedder(tokenizer, name="other-model")
    with pytest.raises(IndexMismatch, match="built with embedder 'fake-hash'.*--rebuild"):
        Index(tmp_path / "idx", embedder=other).ingest([corpus], progress=False)
    with pytest.raises(IndexMismatch, match="built with embedder 'fake-hash'.*--rebuild"):
        Index(tmp_path / "idx", embedder=other).search("bees")
    with pytest.raises(IndexMismatch, match="chunked with 200 tokens"):
        Index(tmp_path / "idx", embedder=FakeEmbedder(tokenizer), chunking=ChunkConfig(100, 10)).ingest(
            [corpus], progress=False)
    report = Index(tmp_path / "idx", embedder=other).ingest([corpus], rebuild=True, progress=False)
    assert len(report.added) == len(GOOD)
    assert Index(tmp_path / "idx", embedder=other).info().embedder == "other-model"


def test_a_chunk_is_found_by_the_product_its_title_names(tmp_path: Path, fake: FakeEmbedder) -> None:
    """Two pages alike but for their title: a question naming the product finds its page in dense
    and BM25 search alike, and the hit's text is still the exact, title-free slice."""
    docs = tmp_path / "docs"
    docs.mkdir()
    filler = " ".join(f"Clause {i} applies to every holder of the account." for i in range(80))
    for name in ("Zircon", "Basalt"):
        (docs / f"{name.lower()}.md").write_text(f"# {name} Checking\n\n{filler}\n\nThe monthly fee is waived.\n")
    index = Index(tmp_path / "idx", embedder=fake, chunking=ChunkConfig(chunk_tokens=60, overlap_tokens=0))
    index.ingest([docs], progress=False)
    assert any(t.startswith("Zircon Checking\n\n") for t in fake.embedded)
    for mode in ("dense", "bm25"):
        hit = index.search("Zircon monthly fee waived", k=1, mode=mode)[0]
        assert Path(hit.source).name == "zircon.md" and "Zircon" not in hit.text, mode
