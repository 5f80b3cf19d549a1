"""Chunker: exact offsets, the model's token limit, pages as hard boundaries."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rag.ingest.chunker import ChunkConfig, Chunker
from rag.ingest.loaders import Document, Page, load
from tests.conftest import FIXTURES, GOOD


def _doc(name: str) -> Document:
    path = FIXTURES / name
    return load(path.suffix, path.read_bytes())


@pytest.fixture(scope="module")
def hf_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from rag.models import resolve

    tok = AutoTokenizer.from_pretrained(str(resolve("all-MiniLM-L6-v2")))
    tok.model_max_length = 1 << 30
    return tok


@pytest.mark.parametrize("name", GOOD)
@pytest.mark.parametrize("max_tokens", [24, 64, 256])
def test_offsets_round_trip_and_limit_holds(tokenizer: Any, hf_tokenizer: Any, name: str, max_tokens: int) -> None:
    """Counts must match what sentence-transformers' own (transformers) tokenizer will see."""
    chunker = Chunker(tokenizer, max_tokens, ChunkConfig(chunk_tokens=200, overlap_tokens=8))
    doc = _doc(name)
    chunks = chunker.split(doc)
    assert chunks
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        with_specials = len(hf_tokenizer.encode(chunk.text, add_special_tokens=True))
        assert with_specials == chunk.n_tokens <= max_tokens
        assert len(hf_tokenizer.encode(chunk.embedded, add_special_tokens=True)) <= max_tokens
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_chunks_cover_the_text_and_overlap(tokenizer: Any) -> None:
    words = " ".join(f"word{i}" for i in range(600))
    doc = Document("text", words, (Page(0, len(words), None),), ())
    chunks = Chunker(tokenizer, 256, ChunkConfig(chunk_tokens=50, overlap_tokens=10)).split(doc)
    assert len(chunks) > 5
    assert chunks[0].start == 0 and chunks[-1].end == len(words)
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # neighbours share text
        assert after.start > before.start


def test_pdf_chunks_never_cross_pages(tokenizer: Any) -> None:
    doc = _doc("sample.pdf")
    chunks = Chunker(tokenizer, 256, ChunkConfig(chunk_tokens=64, overlap_tokens=8)).split(doc)
    pages = {p.number: p for p in doc.pages}
    assert {c.page for c in chunks} == {1, 2, 3}
    for chunk in chunks:
        page = pages[chunk.page]
        assert page.start <= chunk.start and chunk.end <= page.end


def test_chunks_carry_heading_path(tokenizer: Any) -> None:
    doc = _doc("sample.md")
    chunks = Chunker(tokenizer, 256, ChunkConfig(chunk_tokens=16, overlap_tokens=0)).split(doc)
    drip = next(c for c in chunks if "vinegar" in c.text)
    assert drip.heading == "Greenhouse Manual > Watering > Drip lines"


def test_a_single_unbreakable_run_is_still_split_to_the_limit(tokenizer: Any) -> None:
    text = "x" * 3000 + " " + "é" * 500
    doc = Document("text", text, (Page(0, len(text), None),), ())
    chunks = Chunker(tokenizer, 32, ChunkConfig(chunk_tokens=30, overlap_tokens=0)).split(doc)
    assert all(c.n_tokens <= 32 and text[c.start : c.end] == c.text for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize(("size", "overlap"), [(4, 0), (50, 50), (50, -1)])
def test_bad_chunk_config_is_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="chunk_tokens|overlap_tokens"):
        ChunkConfig(size, overlap)


def test_a_lone_heading_is_joined_to_its_section(tokenizer: Any) -> None:
    body = " ".join(f"Clause {i} of the policy applies to every account holder." for i in range(40))
    text = f"# Why am I being charged a fee?\n\n## Monthly fee\n\n{body}"
    doc = Document("markdown", text, (Page(0, len(text), None),), ())
    chunks = Chunker(tokenizer, 256, ChunkConfig(chunk_tokens=120, overlap_tokens=0)).split(doc)
    assert all(c.n_tokens - 2 >= 24 for c in chunks)
    assert chunks[0].text.startswith("# Why am I being charged a fee?\n\n## Monthly fee\n\nClause 0 of")
    assert all(c.n_tokens <= 122 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_each_chunk_carries_its_title_and_heading_path_for_embedding(tokenizer: Any) -> None:
    """Near-identical pages differ only in the product named by their title: the embedded and
    BM25 text must name it while `text` stays the exact slice shown and cited."""
    body = " ".join(f"Rule {i}: the daily limit is $3,500 for verified holders." for i in range(60))
    text = f"# Gold Savings Account\n\n## Limits\n\n{body}"
    doc = load(".md", text.encode())
    chunks = Chunker(tokenizer, 256, ChunkConfig(chunk_tokens=80, overlap_tokens=0)).split(doc)
    assert len(chunks) > 3
    later = chunks[-1]
    assert "Gold Savings" not in later.text and later.context == "Gold Savings Account > Limits"
    assert later.embedded == f"Gold Savings Account > Limits\n\n{later.text}"
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_a_context_longer_than_the_room_left_is_cut_at_a_word(tokenizer: Any, hf_tokenizer: Any) -> None:
    title = " ".join(f"heading{i}" for i in range(200))
    text = f"# {title}\n\n" + " ".join(f"Sentence {i} of the body." for i in range(100))
    chunks = Chunker(tokenizer, 64, ChunkConfig(chunk_tokens=50, overlap_tokens=0)).split(load(".md", text.encode()))
    for chunk in chunks:
        assert len(hf_tokenizer.encode(chunk.embedded, add_special_tokens=True)) <= 64
        assert title.startswith(chunk.context)
    assert any(chunk.context for chunk in chunks)
