"""Turn a file's bytes into plain text, with pages and headings located by character offset.

Every loader returns a `Document` whose `text` is what chunks are cut from, so
offsets recorded later always point into this text. Failures raise `LoadError`
with a reason a person can act on; the caller adds the path.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parsers import on first use: searching an index never parses
    from bs4 import Tag


class LoadError(Exception):
    """A file could not be turned into text; the message says why."""


@dataclass(frozen=True)
class Page:
    """A span of the document text that chunks never cross (a PDF page, or the whole text)."""

    start: int
    end: int
    number: int | None  # 1-based page number for PDFs, None otherwise


@dataclass(frozen=True)
class Heading:
    """From `offset` on, the text sits under this heading path (e.g. "Install > Linux")."""

    offset: int
    path: str


@dataclass(frozen=True)
class Document:
    kind: str
    text: str
    pages: tuple[Page, ...]
    headings: tuple[Heading, ...]
    title: str = ""  # the document's own title (HTML <title>, PDF metadata) when it has one

    def heading_at(self, offset: int) -> str:
        """The heading path in effect at `offset` ("" before the first heading)."""
        i = bisect.bisect_right([h.offset for h in self.headings], offset) - 1
        return self.headings[i].path if i >= 0 else ""

    def context_at(self, offset: int) -> str:
        """Title and heading path at `offset`, the title left out where the top heading already
        says it: what a passage is about when its own words do not name it (a product's name)."""
        parts = [p for p in self.heading_at(offset).split(" > ") if p]
        title = " ".join(self.title.split())
        if title and parts and parts[0].casefold() in title.casefold():
            parts[0] = title
        elif title and not (parts and title.casefold() in parts[0].casefold()):
            parts.insert(0, title)
        return " > ".join(parts)


def load(suffix: str, data: bytes) -> Document:
    """Parse `data` as the format its file suffix names."""
    loader = LOADERS.get(suffix.lower())
    if loader is None:
        raise LoadError(f"unsupported file type {suffix!r} (supported: {', '.join(sorted(LOADERS))})")
    if not data.strip():
        raise LoadError("file is empty")
    doc = loader(data)
    if not doc.text.strip():
        raise LoadError("no text could be extracted")
    return doc


# --- plain text formats ---------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """Strict decoding: UTF-8 (optionally with BOM) or UTF-16 with BOM; newlines normalized."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoadError(f"invalid UTF-16 text at byte {exc.start}") from exc
    else:
        if b"\x00" in data:
            raise LoadError("binary data (NUL bytes) in a text file")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise LoadError(
                f"not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                "convert the file to UTF-8"
            ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _whole(kind: str, text: str, headings: list[Heading], title: str = "") -> Document:
    return Document(kind, text, (Page(0, len(text), None),), tuple(headings), title)


def _heading_paths(marks: list[tuple[int, int, str]]) -> list[Heading]:
    """(offset, level, title) marks -> headings carrying the full path of enclosing titles."""
    stack: list[tuple[int, str]] = []
    out = []
    for offset, level, title in marks:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        out.append(Heading(offset, " > ".join(t for _, t in stack)))
    return out


def load_txt(data: bytes) -> Document:
    return _whole("text", decode_text(data), [])


def load_markdown(data: bytes) -> Document:
    text = decode_text(data)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    marks = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map is not None:
            title = tokens[i + 1].content.strip()
            marks.append((line_starts[tok.map[0]], int(tok.tag[1]), title))
    return _whole("markdown", text, _heading_paths(marks))


_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")


def load_rst(data: bytes) -> Document:
    """Section titles are lines underlined (optionally overlined) by a run of punctuation;
    levels follow the order in which adornment styles first appear, as docutils does."""
    text = decode_text(data)
    lines = text.split("\n")
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    styles: list[tuple[str, bool]] = []
    marks = []
    for i in range(1, len(lines)):
        under = _RST_ADORNMENT.match(lines[i])
        title = lines[i - 1].strip()
        if not under or not title or _RST_ADORNMENT.match(lines[i - 1]) or len(lines[i].rstrip()) < len(title):
            continue
        over = i >= 2 and lines[i - 2].rstrip() == lines[i].rstrip()
        style = (under.group(1), over)
        if style not in styles:
            styles.append(style)
        marks.append((offsets[i - 2] if over else offsets[i - 1], styles.index(style) + 1, title))
    return _whole("rst", text, _heading_paths(marks))


# --- HTML -----------------------------------------------------------------------------------------

_DROP_TAGS = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
              "svg", "iframe", "button", "head", "title", "meta", "link"]
_DROP_SELECTORS = '[role="navigation"], [role="search"], [aria-hidden="true"], .headerlink'
_BLOCK_TAGS = {"address", "article", "blockquote", "dd", "div", "dl", "dt", "fieldset", "figcaption",
               "figure", "hr", "li", "main", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
               "th", "thead", "tr", "ul", "body", "caption", "details", "summary"}
_HEADING_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class _Blocks:
    """Collects the text of block elements; inline whitespace collapses, <pre> keeps its own."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.blocks: list[tuple[str, int | None]] = []  # (text, heading level or None)

    def add(self, text: str, pre: bool) -> None:
        self.parts.append(text if pre else re.sub(r"\s+", " ", text))

    def flush(self, level: int | None = None) -> None:
        text = "".join(self.parts).strip()
        self.parts = []
        if text and level is not None:
            self.blocks.append((" ".join(text.split()), level))
        elif text:
            self.blocks.append((re.sub(r" *\n *\n\s*", "\n\n", text), None))


def _walk(node: Tag, out: _Blocks, pre: bool) -> None:
    from bs4 import Comment, Doctype, NavigableString, ProcessingInstruction, Tag

    for child in node.children:
        if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            out.add(str(child), pre)
        elif isinstance(child, Tag):
            name = child.name
            if name in _HEADING_TAGS:
                out.flush()
                _walk(child, out, pre)
                out.flush(level=int(name[1]))
            elif name == "br":
                out.add("\n", True)
            elif name in _BLOCK_TAGS:
                out.flush()
                _walk(child, out, pre or name == "pre")
                out.flush()
            else:
                _walk(child, out, pre)


def load_html(data: bytes) -> Document:
    """Main text only: scripts, styles, navigation and page chrome are dropped."""
    if b"\x00" in data[:8192]:
        raise LoadError("binary data (NUL bytes) in an HTML file")
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.select(_DROP_SELECTORS):
        tag.decompose()
    main = soup.find("main") or soup.select_one('[role="main"]') or soup.find("article") or soup.body or soup
    out = _Blocks()
    try:
        _walk(main, out, pre=False)
    except RecursionError as exc:
        raise LoadError("HTML is nested too deeply to parse") from exc
    out.flush()
    text, marks, offset = [], [], 0
    for block, level in out.blocks:
        if level is not None:
            marks.append((offset, level, block))
        text.append(block)
        offset += len(block) + 2
    return _whole("html", "\n\n".join(text), _heading_paths(marks), title)


# --- PDF ------------------------------------------------------------------------------------------

MAX_PDF_PAGES = 5_000  # past this a PDF is refused before any page is read (a crafted file can claim millions)


def load_pdf(data: bytes) -> Document:
    """Text per page (pages never share a chunk); headings from the PDF outline when it has one."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise LoadError("encrypted PDF: a password is required") from exc
        raise LoadError(f"corrupt or unreadable PDF: {exc}") from exc
    try:
        if len(pdf) > MAX_PDF_PAGES:
            raise LoadError(f"PDF has {len(pdf):,} pages, over the limit of {MAX_PDF_PAGES:,}")
        texts = [_pdf_page_text(pdf, i) for i in range(len(pdf))]
        outline = _pdf_outline(pdf)
        title = _pdf_title(pdf)
    finally:
        pdf.close()
    pages, parts, offset = [], [], 0
    for number, page_text in enumerate(texts, 1):
        pages.append(Page(offset, offset + len(page_text), number))
        parts.append(page_text)
        offset += len(page_text) + 2
    text = "\n\n".join(parts)
    marks = []
    for level, title, page_index in outline:
        if page_index < len(pages):
            page = pages[page_index]
            found = text.find(title, page.start, page.end)
            marks.append((found if found >= 0 else page.start, level, title))
    marks.sort(key=lambda m: m[0])
    return Document("pdf", text, tuple(pages), tuple(_heading_paths(marks)), title)


def _pdf_page_text(pdf: Any, index: int) -> str:
    import pypdfium2 as pdfium

    try:
        page = pdf[index]
    except pdfium.PdfiumError as exc:  # the document opened, but this page's objects are broken
        raise LoadError(f"corrupt PDF: page {index + 1} cannot be read ({exc})") from exc
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_bounded()
    finally:
        textpage.close()
        page.close()
    return str(text).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _pdf_outline(pdf: Any) -> list[tuple[int, str, int]]:
    """(level, title, page index) for each outline entry; [] when the PDF has none or it is broken."""
    out = []
    try:
        for mark in pdf.get_toc():
            dest = mark.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None and index >= 0:
                out.append((mark.level + 1, " ".join(mark.get_title().split()), index))
    except Exception:  # a broken outline costs us headings, not the document
        return []
    return out


def _pdf_title(pdf: Any) -> str:
    """The Title in the PDF's metadata; "" when missing or unreadable."""
    try:
        return " ".join(str(pdf.get_metadata_dict().get("Title", "")).split())
    except Exception:  # broken metadata costs us the title, not the document
        return ""


LOADERS: dict[str, Callable[[bytes], Document]] = {
    ".txt": load_txt,
    ".text": load_txt,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
}
