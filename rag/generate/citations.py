"""Citations of a generated answer: parse them, check them, and point each at a quoted span.

A model prompted to cite (rag.generate.prompt.CITED) writes sentences followed by markers such
as [2] or [1, 3] that number the passages it was shown; a marker naming no passage is dropped
and counted. Other models write plain sentences, which are cited after writing: to the passage
holding the sentence's answer string here (`correct`), else to the passage the verifier finds
supports it best (rag.verify.check). A small model often cites
the wrong passage, so each sentence's citation is then checked against the evidence
(`correct`): the passage that holds the sentence's answer string is the citation, and a wrong
or missing marker is replaced and flagged. Each citation's quote is that answer string where
the passage holds it, else the passage's sentence sharing the most content terms with the
answer sentence: the span a reader checks the sentence against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from rag import lexical, tables
from rag.generate import excerpt
from rag.retrieve import Hit

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
SENTENCE_END = re.compile(r"(?<=[.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])*)(?:\s+|$)")


@dataclass(frozen=True)
class Citation:
    marker: int
    chunk_id: int
    source: str
    page: int | None
    start: int  # character offsets of the quote in the file's extracted text
    end: int
    quote: str


@dataclass(frozen=True)
class Sentence:
    text: str  # without its markers
    citations: list[int]  # valid markers, in order of first mention
    # Filled in by the verifier (rag.verify), None until then: P(supported) by the best cited passage,
    # whether that clears the verifier's threshold, and the verdict (see rag.verify.VERDICTS).
    support: float | None = None
    citation_support: list[float] | None = None  # P(supported) by each cited passage, in `citations` order
    supported: bool | None = None
    verdict: str | None = None
    best_marker: int | None = None  # the shown passage that supports it best, cited or not
    # Set when the citations were changed after generation (rag.generate.citations.correct, or the
    # verifier finding that another shown passage supports it): the markers the model had written.
    citation_corrected: bool = False
    cited_as: list[int] | None = None
    # Unsupported sentences: the numbers, names and flags the passage judged lacks (rag.entities).
    missing: list[str] | None = None


@dataclass(frozen=True)
class Parsed:
    sentences: list[Sentence]
    citations: list[Citation]  # one per (sentence, marker) pair, in reading order
    invalid_markers: int  # markers that named no passage, removed


# A list item's marker at the start of a line: "1. ", "2) ", "- ", "* ".
LIST_ITEM = re.compile(r"^[ \t]*(?:\d{1,2}[.)]|[-*\u2022+])[ \t]+", re.MULTILINE)
FENCE = "```"


def split_sentences(answer: str) -> list[str]:
    """Sentences with their trailing markers ("It rains [1]. Then [2]" -> two sentences); a list
    item is one sentence and a fenced code block belongs to the sentence before it (see `spans`)."""
    return [s for s in (answer[a:b].strip() for a, b in spans(answer)) if s]


def spans(text: str) -> list[tuple[int, int]]:
    """Where the sentences of `text` are, as offsets. Prose is split after a full stop (and its
    markers); a numbered or bulleted list item is one sentence however many full stops it has
    ("2. Run the command: ``` python3 -m venv env ``` It makes a folder."); a fenced code block
    joins the sentence before it, and so does the first sentence after one that ends with a colon
    ("... use the following commands:" and "1. Run python3 -m venv env"). Steps and commands are so
    checked whole: cut at every full stop, "3." would be a sentence of its own, and a lead-in
    ending with a colon would be the answer's first sentence with nothing in it to check."""
    out: list[tuple[int, int]] = []
    for start, end, kind in _blocks(text):
        units = _prose(text, start, end) if kind == "prose" else [(start, end)]
        if out and (kind == "code" or text[out[-1][0]:out[-1][1]].endswith(":")):
            out[-1], units = (out[-1][0], units[0][1]), units[1:]
        out += units
    return out


def _prose(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentences of the prose in text[start:end]: split after full stops outside fences."""
    out, pos = [], start
    for match in SENTENCE_END.finditer(text, start, end):
        if match.end() > pos and text.count(FENCE, start, match.start()) % 2 == 0:
            out.append((pos, match.end()))
            pos = match.end()
    return [*out, (pos, end)] if pos < end else out


def _blocks(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of `text`'s blocks: "item" (a list item and its continuation lines),
    "prose" (lines up to a blank line or a list item) and "code" (a fenced block after a blank
    line). A block's lines inside a fence never start another block."""
    blocks: list[list[Any]] = []
    fenced, open_block, pos = False, False, 0
    for line in text.splitlines(keepends=True):
        start, end, pos = pos, pos + len(line.rstrip()), pos + len(line)
        stripped = line.strip()
        fence = stripped.startswith(FENCE) and stripped.count(FENCE) % 2 == 1
        if fenced or (stripped and open_block and not LIST_ITEM.match(line)):
            blocks[-1][1] = max(end, blocks[-1][1])
        elif stripped:
            kind = "code" if fence else "item" if LIST_ITEM.match(line) else "prose"
            blocks.append([start + len(line) - len(line.lstrip()), end, kind])
        open_block = bool(stripped) or fenced
        fenced ^= fence
    return [(a, b, kind) for a, b, kind in blocks]


def parse(answer: str, passages: list[Hit]) -> Parsed:
    """Sentences and citations of `answer`, whose markers number `passages` from 1."""
    sentences, invalid = [], 0
    for raw in split_sentences(answer):
        markers: list[int] = []
        for group in MARKER.findall(raw):
            for number in (int(n) for n in group.split(",")):
                if not 1 <= number <= len(passages):
                    invalid += 1
                elif number not in markers:
                    markers.append(number)
        # Without its list markers: a step's number is no value a passage must hold (rag.entities).
        text = " ".join(MARKER.sub(" ", LIST_ITEM.sub("", raw)).split())
        text = re.sub(r"\s+([.!?,;:])", r"\1", text)
        if not text.strip(".!?,;: "):
            continue  # a stray marker on its own is not a sentence
        sentences.append(Sentence(text, markers))
    return Parsed(sentences, cite(sentences, passages), invalid)


def cite(sentences: list[Sentence], passages: list[Hit]) -> list[Citation]:
    """One quoted citation per (sentence, marker), in reading order."""
    return [quote(s.text, n, passages[n - 1]) for s in sentences for n in s.citations]


def correct(parsed: Parsed, passages: list[Hit], answers: list[tuple[int, str]]) -> Parsed:
    """`parsed` with each sentence citing the passage that holds its answer string: one of
    `answers` ((marker, text): what the reader found, best first) that the sentence contains,
    else the sentence itself, found in a passage. A sentence whose citations already include
    that passage, or whose answer string no passage holds, is left as it is."""
    sentences = []
    for sentence in parsed.sentences:
        where = holder(sentence.text, passages, answers)
        if where is None or where in sentence.citations:
            sentences.append(sentence)
        elif not sentence.citations:  # a plain sentence, cited after writing: nothing was corrected
            sentences.append(replace(sentence, citations=[where]))
        else:
            sentences.append(replace(sentence, citations=[where], citation_corrected=True,
                                     cited_as=sentence.citations))
    return Parsed(sentences, cite(sentences, passages), parsed.invalid_markers)


def holder(sentence: str, passages: list[Hit], answers: list[tuple[int, str]]) -> int | None:
    """The marker of the passage holding `sentence`'s answer string (see `correct`), or None."""
    said = _plain(sentence)
    for marker, text in answers:
        if _plain(text) and f" {_plain(text)} " in f" {said} ":
            return marker
    found = [n for n, hit in enumerate(passages, 1) if said and f" {said} " in f" {_plain(hit.text)} "]
    return found[0] if len(found) == 1 else None


def _plain(text: str) -> str:
    """Lower case, words only, single spaces: what "holds the same string" compares."""
    return " ".join(re.findall(r"\w+(?:[.,:]\w+)*", text.lower()))


def locate(answer: str, text: str) -> tuple[int, int] | None:
    """Where `text` holds `answer` (case and spacing aside), as character offsets, or None."""
    words = re.findall(r"\w+(?:[.,:]\w+)*", answer)
    if not words:
        return None
    pattern = r"(?<!\w)" + r"\W{1,3}".join(re.escape(w) for w in words) + r"(?!\w)"
    found = re.search(pattern, text, re.IGNORECASE)
    if found is None:
        return None
    start, end = found.span()
    if answer.lstrip()[:1] in "$£€" and text[start - 1: start] == answer.lstrip()[:1]:
        start -= 1  # keep the currency sign the answer had
    return start, end


VALUE = re.compile(r"[$€£]?\d[\d,.:]*%?")


# A sentence longer than this says much more than its span answers: the span is shown alone.
STATED_MAX_CHARS = 300
# What opens a list item or heading line ("- ", "3. ", "## "), not part of the sentence it starts.
_LINE_OPENER = re.compile(r"^(?:[#>*+-]+|\d+(?:\.\d+)*[.)])\s+")


def stating(hit: Hit, span: str, start: int, end: int) -> str | None:
    """How the span `span` of `hit` ([start, end), file offsets) is written out as an answer, so that the
    reader's answer is a sentence, not a bare "venv": the passage's sentence holding it, or, for a
    table cell, the cell with its row label and column header ("Verified accounts: Daily send limit
    $3,500.", as the row alone does not say which value is which). None where the passage does not
    hold the span there or its sentence runs past STATED_MAX_CHARS (the span alone says it better)."""
    a, b = start - hit.start, end - hit.start
    text = hit.text
    if not 0 <= a < b <= len(text) or text[a:b] != span:
        return None
    if cell := tables.within(tables.cells(text), a, b):
        return f"{cell.row}: " + " ".join(part for part in (cell.column.strip(), text[a:b]) if part) + "."
    around = [(s, e) for s, e in excerpt.sentence_spans(text) if s < b and a < e]
    if not around:
        return None
    said = " ".join(_LINE_OPENER.sub("", text[around[0][0]:around[-1][1]].strip()).split())
    return said if len(said) <= STATED_MAX_CHARS else None


def quote(sentence: str, marker: int, hit: Hit) -> Citation:
    """The answer string itself where the passage holds it (the sentence without its final
    point, as a short answer is); else, for a sentence stating a value ("... is $35,000."), its
    last value the passage holds (a table's cell); else the passage's sentence sharing the most
    content terms with `sentence` (first on ties); the whole passage when none shares any."""
    found = locate(sentence.rstrip(".!?"), hit.text)
    for value in reversed(VALUE.findall(sentence) if found is None else []):
        if found := locate(value.rstrip(".,:"), hit.text):
            break
    if found is None:
        wanted = set(lexical.terms([sentence])[0])
        spans = excerpt.sentence_spans(hit.text)
        terms = lexical.terms([hit.text[s:e] for s, e in spans])
        found, best_score = (0, len(hit.text)), 0
        for span, words in zip(spans, terms, strict=True):
            score = len(wanted & set(words))
            if score > best_score:
                found, best_score = span, score
    start, end = found
    return Citation(marker, hit.chunk_id, hit.source, hit.page, hit.start + start, hit.start + end,
                    hit.text[start:end])
