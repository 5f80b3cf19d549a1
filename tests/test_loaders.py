"""Loaders: real fixture files of each format, and each kind of broken input."""

from __future__ import annotations

import pytest

from rag.ingest.loaders import Document, Heading, LoadError, Page, decode_text, load
from tests.conftest import BROKEN, FIXTURES


def _load(name: str) -> Document:
    path = FIXTURES / name
    return load(path.suffix, path.read_bytes())


def test_html_keeps_main_text_and_drops_scripts_styles_navigation() -> None:
    doc = _load("sample.html")
    assert "sixty thousand bees" in doc.text
    assert "Leave twenty kilograms for winter." in doc.text
    assert "MUST_NOT_APPEAR" not in doc.text
    assert "display: none" not in doc.text
    assert "¶" not in doc.text
    assert "inspect --hive 3\n  --frames all" in doc.text  # <pre> keeps its layout
    assert doc.heading_at(doc.text.index("Colonies swarm")) == "Beekeeping basics > Swarming"
    assert doc.heading_at(doc.text.index("capped")) == "Beekeeping basics > Honey harvest"


def test_markdown_heading_paths_ignore_code_comments_and_know_setext() -> None:
    doc = _load("sample.md")
    assert doc.heading_at(doc.text.index("Flush the drip")) == "Greenhouse Manual > Watering > Drip lines"
    assert doc.heading_at(doc.text.index("water --zone")) == "Greenhouse Manual > Watering"
    assert doc.heading_at(doc.text.index("paraffin heater")) == "Greenhouse Manual > Heating"
    assert doc.heading_at(0) == "Greenhouse Manual"


def test_rst_heading_levels_follow_adornment_order() -> None:
    doc = _load("sample.rst")
    assert doc.heading_at(doc.text.index("vulcanising")) == "Bicycle Repair > Punctures > Patches"
    assert doc.heading_at(doc.text.index("brake pads")) == "Bicycle Repair > Brakes"


def test_pdf_text_per_page_with_outline_headings() -> None:
    doc = _load("sample.pdf")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert "POSIX" in doc.text[doc.pages[0].start : doc.pages[0].end]
    assert "Bourne-Again SHell" in doc.text[doc.pages[2].start : doc.pages[2].end]
    assert doc.heading_at(doc.text.index("Bourne-Again")) == "Basic Shell Features"


def test_text_decoding_handles_bom_and_newlines() -> None:
    assert _load("utf16.txt").text.startswith("Kettles boil water")
    assert decode_text(b"\xef\xbb\xbfa\r\nb\rc") == "a\nb\nc"


@pytest.mark.parametrize(("name", "reason"), sorted(BROKEN.items()))
def test_broken_files_raise_load_error_with_reason(name: str, reason: str) -> None:
    with pytest.raises(LoadError, match=reason):
        _load(name)


def test_unsupported_type_names_supported_ones() -> None:
    with pytest.raises(LoadError, match=r"unsupported file type '\.docx'.*\.md"):
        load(".docx", b"PK\x03\x04")


def test_deeply_nested_html_is_an_error_not_a_crash() -> None:
    html = b"<html><body>" + b"<div>" * 5000 + b"deep" + b"</div>" * 5000 + b"</body></html>"
    try:
        doc = load(".html", html)
    except LoadError as exc:
        assert "nested" in str(exc) or "no text" in str(exc)
    else:
        assert "deep" in doc.text


def test_title_and_heading_path_make_one_context_without_repeating_the_top_heading() -> None:
    html = (b"<html><head><title>3. Control Flow \xe2\x80\x94 Python 3.11 documentation</title></head>"
            b"<body><h1>3. Control Flow</h1><p>Intro.</p><h2>3.1 if Statements</h2><p>Body text.</p></body></html>")
    doc = load(".html", html)
    assert doc.title == "3. Control Flow \u2014 Python 3.11 documentation"
    assert doc.context_at(doc.text.index("Body")) == f"{doc.title} > 3.1 if Statements"
    other = Document("html", "x", (Page(0, 1, None),), (Heading(0, "Accounts > Fees"),), "Rho-Bank")
    assert other.context_at(0) == "Rho-Bank > Accounts > Fees"
    assert load(".txt", b"plain words").context_at(0) == ""
