"""Hostile and malformed files: fuzzed bytes through the sandboxed loaders and the chunker, a
decompression bomb, a parser past its time limit, PDFs past the page limit."""

from __future__ import annotations

import io
import shutil
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag import Index
from rag.ingest import loaders
from rag.ingest.chunker import ChunkConfig, Chunker
from rag.ingest.loaders import LoadError
from rag.ingest.sandbox import ParseLimits, Parser
from tests.conftest import FIXTURES, REPO, FakeEmbedder

LIMIT_S = 10.0
SAMPLE_PDF = (FIXTURES / "sample.pdf").read_bytes()
ODD = ["\x00", "\u200b", "\u200f", "\u202e", "\ufeff", "\ud7ff", "é", "\r", "\t", "<", ">", "&", "#", "`", "*",
       "[", "]", "(", ")", "|", "\n\n", "=" * 5, "-" * 5]


def _texts() -> st.SearchStrategy[bytes]:
    """Text in the encodings and shapes that break parsers: NULs, zero-width and right-to-left
    marks, Latin-1 inside UTF-8, a BOM in the middle, huge single lines, markup fragments."""
    pieces = st.lists(st.one_of(st.sampled_from(ODD), st.text(max_size=40)), max_size=60).map("".join)
    utf8 = pieces.map(lambda s: s.encode("utf-8", "surrogatepass"))
    mixed = st.tuples(utf8, pieces.map(lambda s: s.encode("latin-1", "replace"))).map(b"".join)
    huge = st.tuples(st.sampled_from(["a", "word ", "é", "<b>", "\u200b"]), st.integers(10_000, 300_000)).map(
        lambda t: (t[0] * (t[1] // len(t[0]))).encode())
    return st.one_of(utf8, mixed, huge, st.binary(max_size=2_000))


def _html() -> st.SearchStrategy[bytes]:
    nested = st.tuples(st.sampled_from(["div", "b", "table", "li", "p"]), st.integers(1, 20_000)).map(
        lambda t: (f"<{t[0]}>" * t[1] + "deep" + f"</{t[0]}>" * (t[1] // 2)).encode())
    return st.one_of(nested, _texts())


def _pdfs() -> st.SearchStrategy[bytes]:
    """The sample PDF cut short, or with a run of its bytes overwritten."""
    cut = st.integers(0, len(SAMPLE_PDF)).map(lambda n: SAMPLE_PDF[:n])
    spliced = st.tuples(st.integers(0, len(SAMPLE_PDF)), st.binary(min_size=1, max_size=200)).map(
        lambda t: SAMPLE_PDF[: t[0]] + t[1] + SAMPLE_PDF[t[0] + len(t[1]):])
    return st.one_of(cut, spliced, st.binary(max_size=3_000).map(lambda b: b"%PDF-1.7\n" + b))


FILES = st.one_of(st.tuples(st.sampled_from([".txt", ".md", ".rst"]), _texts()),
                  st.tuples(st.sampled_from([".html", ".htm"]), _html()), st.tuples(st.just(".pdf"), _pdfs()))


@pytest.fixture(scope="module")
def parser() -> Any:
    with Parser(ParseLimits(timeout_s=LIMIT_S)) as worker:
        yield worker


# Examples per run come from the Hypothesis profile (tests/conftest.py): 250 in `make test`, fewer in the
# everyday loop (`--hypothesis-profile fast`).
@pytest.mark.timeout(600)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.function_scoped_fixture])
@given(FILES)
def test_fuzzed_files_parse_or_fail_per_file_within_the_time_limit(parser: Parser, tokenizer: Any,
                                                                  file: tuple[str, bytes]) -> None:
    """Parsing is bounded by the worker's wall-clock limit; chunking, which runs in the caller, gets as much
    CPU time (CPU, not wall time: a loaded machine must not fail it, a quadratic chunker must)."""
    suffix, data = file
    start = time.monotonic()
    try:
        doc = parser.load(suffix, data)
    except LoadError as exc:
        assert str(exc)  # a reason a person can read
        return
    finally:
        assert time.monotonic() - start < LIMIT_S + 5  # the worker is killed at its limit
    cpu = time.process_time()
    chunks = Chunker(tokenizer, 256, ChunkConfig()).split(doc)
    assert all(doc.text[c.start: c.end] == c.text and c.text.strip() for c in chunks)
    assert time.process_time() - cpu < LIMIT_S


def _bomb(inflated: int) -> bytes:
    """A one-page PDF whose content stream inflates to `inflated` bytes of spaces."""
    from pypdf import PdfWriter
    from pypdf.generic import NameObject, NumberObject, StreamObject

    squeeze = zlib.compressobj(9)
    block = b" " * (1 << 24)
    data = squeeze.compress(b"BT /F1 12 Tf (boom) Tj ET ") + b"".join(
        squeeze.compress(block) for _ in range(inflated // len(block))) + squeeze.flush()
    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    stream = StreamObject()
    stream.set_data(data)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    stream[NameObject("/Length")] = NumberObject(len(data))
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.slow
def test_a_decompression_bomb_costs_one_file_not_the_build(tmp_path: Path, fake: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bomb.pdf").write_bytes(_bomb(2 << 30))  # ~2 MB on disk, 2 GiB inflated
    shutil.copy(FIXTURES / "sample.md", corpus)
    report = Index(tmp_path / "idx", embedder=fake).ingest(
        [corpus], progress=False, parse_limits=ParseLimits(timeout_s=30, memory_bytes=1 << 30))
    assert [Path(p).name for p in report.added] == ["sample.md"]
    (failure,) = report.failed
    assert failure["path"].endswith("bomb.pdf") and ("memory" in failure["error"] or "crashed" in failure["error"])


def test_a_parser_past_its_time_limit_is_killed_and_the_build_goes_on(tmp_path: Path, fake: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    from pypdf import PdfWriter

    manual = PdfWriter()
    for _ in range(4):  # the Bash manual four times over, 784 pages: about a second to read
        manual.append(REPO / "corpus" / "bash-manual" / "bashref.pdf")
    manual.write(corpus / "bashref.pdf")
    shutil.copy(FIXTURES / "sample.md", corpus)
    shutil.copy(FIXTURES / "sample.txt", corpus)
    start = time.monotonic()
    report = Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False,
                                                            parse_limits=ParseLimits(timeout_s=0.3))
    assert sorted(Path(p).name for p in report.added) == ["sample.md", "sample.txt"]  # after the kill, a new worker
    (failure,) = report.failed
    assert failure["path"].endswith("bashref.pdf") and "longer than 0.3 s" in failure["error"]
    assert time.monotonic() - start < 30


def test_a_pdf_with_a_broken_page_is_a_load_error_naming_the_page() -> None:
    with pytest.raises(LoadError, match=r"corrupt PDF: page \d+ cannot be read"):  # found by the fuzz test
        loaders.load(".pdf", SAMPLE_PDF[:85] + b"\x00" + SAMPLE_PDF[86:])


def test_pdfs_past_the_page_limit_are_refused_before_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loaders, "MAX_PDF_PAGES", 2)
    with pytest.raises(LoadError, match="3 pages, over the limit of 2"):
        loaders.load(".pdf", SAMPLE_PDF)
