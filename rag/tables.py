"""Markdown tables read by row and column, wherever a passage is read or judged.

A table row alone ("| Verified accounts | $3,500 | $35,000 |") does not say which value is the
daily limit and which the monthly one: its column headers do, lines away. So the reader, the
verifier and the generator's prompt read each row written out as a sentence, "Header: cell;
Header: cell." (`linearize`), with the pieces copied from the passage mapped back so that
offsets into the file stay exact. And `cells` gives each value cell with its row label and
column header, so a claim or a question that names another row or column than the cell's
("monthly" for a value in the "Daily send limit" column) can be told apart (`misread`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag import lexical

_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$")
_RULE = re.compile(r"^[\s|:-]*-{3,}[\s|:-]*$")
# Question words, which ask and name nothing (stemmed: "many" is "mani").
_ASKED = frozenset(["what", "which", "how", "who", "whom", "whose", "when", "where", "why", "much", "mani"])
# Stems that name the same period ("daily" and "per day"; "annual" and "yearly").
_SAME = {"daili": "day", "annual": "year", "yearli": "year", "monthli": "month", "weekli": "week"}


@dataclass(frozen=True)
class View:
    """A passage as it is read, and the pieces of it copied from the passage: (start in
    `text`, start in the passage, length), so a span found in `text` maps back."""

    text: str
    pieces: list[tuple[int, int, int]]

    def original(self, start: int, end: int) -> tuple[int, int] | None:
        """[start, end) of `text` as offsets into the passage, or None when it is not one copied piece."""
        for at, source, length in self.pieces:
            if at <= start and end <= at + length:
                return source + start - at, source + end - at
        return None

    def position(self, start: int, end: int) -> tuple[int, int] | None:
        """The inverse of `original`: [start, end) of the passage as offsets into `text`."""
        for at, source, length in self.pieces:
            if source <= start and end <= source + length:
                return at + start - source, at + end - source
        return None


@dataclass(frozen=True)
class Cell:
    """A value cell of a table body: where it is, and what it is the value of."""

    start: int  # offsets into the passage
    end: int
    row: str  # its row's label (the row's first cell)
    column: str  # its column's header
    rows: tuple[str, ...]  # every row label of its table
    columns: tuple[str, ...]  # every header of its table but the label column's


def linearize(passage: str, context: str = "") -> View:
    """`passage` with each Markdown table row after a header written as a sentence, "Header: cell;
    Header: cell.", so a value is read beside what it is ("Verified accounts ... Daily send
    limit: $3,500") as in prose; the header's rule line is left out. Text without tables reads as is.
    `context` (the passage's heading path) comes first on a line of its own, to be read, never
    answered from: it names the product a table belongs to when the passage itself does not."""
    parts: list[str] = []
    pieces: list[tuple[int, int, int]] = []
    length = 0

    def copy(start: int, end: int) -> None:
        nonlocal length
        pieces.append((length, start, end - start))
        parts.append(passage[start:end])
        length += end - start

    def write(text: str) -> None:
        nonlocal length
        parts.append(text)
        length += len(text)

    if context:
        write(f"{context}\n")
    for line, cells, header in _lines(passage):
        if not cells:
            if line.group():
                copy(line.start(), line.end())
            continue
        for n, (start, end) in enumerate(cells):
            name = header[n] if n < len(header) else ""
            write(f"{name}: " if name else "")
            copy(start, end)
            write("; " if n + 1 < len(cells) else ".")
        write("\n" if line.group().endswith("\n") else "")
    return View("".join(parts), pieces)


def cells(passage: str) -> list[Cell]:
    """Every value cell (all but the row-label column) of every table in `passage` with a header,
    and of every list that is a table written as one (`_nested`)."""
    tables: list[tuple[list[str], list[list[tuple[int, int]]]]] = []
    for _, row, header in _lines(passage):
        if row:
            if not tables or tables[-1][0] is not header:
                tables.append((header, []))
            tables[-1][1].append(row)
    out = []
    for header, rows in tables:
        labels = tuple(passage[slice(*r[0])] for r in rows)
        for label, row in zip(labels, rows, strict=True):
            out += [Cell(start, end, label, header[n] if n < len(header) else "", labels, tuple(header[1:]))
                    for n, (start, end) in enumerate(row[1:], 1)]
    nested = _nested(passage)
    return out + nested + [c for c in _flat(passage) if within(nested, c.start, c.end) is None]


_PARENT = re.compile(r"^([ \t]*)[-*+][ \t]+([^:\n]+):[ \t]*$", re.MULTILINE)
_CHILD = re.compile(r"\n([ \t]+)[-*+][ \t]+([^:\n]+):[ \t]*([^\n]*\S)")


def _nested(passage: str) -> list[Cell]:
    """The cells of lists that are tables: sibling items each ending in ":" over indented
    "Key: value" items ("- Verified accounts:" over "  - Daily: $3,500"); the parent is the
    row, the key the column."""
    groups: list[list[tuple[str, list[tuple[str, int, int]]]]] = []
    previous_end, previous_indent = -1, ""
    for parent in _PARENT.finditer(passage):
        children, at = [], parent.end()
        while (child := _CHILD.match(passage, at)) and len(child.group(1)) > len(parent.group(1)):
            children.append((child.group(2).strip(), child.start(3), child.end(3)))
            at = child.end()
        if not children:
            continue
        if not (groups and parent.start() == previous_end + 1 and parent.group(1) == previous_indent):
            groups.append([])
        groups[-1].append((parent.group(2).strip(), children))
        previous_end, previous_indent = at, parent.group(1)
    out = []
    for group in groups:
        labels = tuple(label for label, _ in group)
        keys = tuple(dict.fromkeys(key for _, children in group for key, _, _ in children))
        out += [Cell(start, end, label, key, labels, keys) for label, children in group for key, start, end in children]
    return out


_ITEM = re.compile(r"^([ \t]*)[-*+][ \t]+([^:\n]+):[ \t]*([^\n]*\S)[ \t]*$", re.MULTILINE)


def _flat(passage: str) -> list[Cell]:
    """The cells of runs of two or more sibling "- Label: value" items ("- Business Gold Rewards
    Card: +0.55%"): a table of one column, the labels its rows."""
    runs: list[list[re.Match[str]]] = []
    for item in _ITEM.finditer(passage):
        if runs and passage.count("\n", runs[-1][-1].end(), item.start()) == 1 and (
                item.group(1) == runs[-1][-1].group(1)):
            runs[-1].append(item)
        else:
            runs.append([item])
    out = []
    for run in (r for r in runs if len(r) > 1):
        labels = tuple(m.group(2).strip() for m in run)
        out += [Cell(m.start(3), m.end(3), label, "", labels, ()) for label, m in zip(labels, run, strict=True)]
    return out


def misread(text: str, cell: Cell) -> str | None:
    """The other row label or column header `text` (a question, a claim) names instead of
    `cell`'s, or None when it names none: "monthly" points at "Monthly send limit" over "Daily
    send limit", when the text has no word of the cell's own header that the other lacks. A text
    that says a label with other words in the place of the cell's own ("weekly send limit" for
    "Daily send limit" and "Monthly send limit"; "Business Titanium Rewards Card" beside the
    Silver, Gold and Platinum ones) names a row or column the table lacks: "another row" or
    "another column". Only where the labels share two words at least: one ("accounts" in "New
    accounts", "Verified accounts") is too often said in passing."""
    said = _terms(text)
    words = set(said)
    for kind, label, others in (("column", cell.column, cell.columns), ("row", cell.row, cell.rows)):
        mine = _terms(label)
        for other in others:
            theirs = set(_terms(other))
            if other != label and (theirs - set(mine)) & words and not (set(mine) - theirs) & words:
                return other
        shared = set.intersection(*(set(_terms(o)) for o in others)) if len(others) > 1 else set()
        if len(shared) > 1 and _elsewise(said, mine, shared):
            return f"another {kind}"
    return None


def _elsewise(said: list[str], label: list[str], shared: set[str]) -> bool:
    """Whether `said` holds `label` with other words in the places of all its own (not `shared`) ones."""
    own = [n for n, t in enumerate(label) if t not in shared]
    if not own:
        return False
    for at in range(len(said) - len(label) + 1):
        window = said[at:at + len(label)]
        if all((w != t) == (n in own) for n, (w, t) in enumerate(zip(window, label, strict=True))) and not (
                set(window) & (set(label) - shared)):
            return True
    return False


@functools.lru_cache(maxsize=4096)
def _terms(text: str) -> list[str]:
    return [_SAME.get(t, t) for t in lexical.terms([text])[0] if t not in _ASKED]


def _lines(passage: str) -> Iterator[tuple[re.Match[str], list[tuple[int, int]], list[str]]]:
    """Each line of `passage` but a table's rule line, with its cells when it is a table body row
    (else []) and its table's header cells (one list per table, shared by its rows)."""
    header: list[str] | None = None
    previous: list[str] | None = None
    for line in re.finditer(r"[^\n]*\n?", passage):
        row = _ROW.match(line.group().rstrip("\n"))
        if row and _RULE.match(line.group()):
            header = previous
            continue
        if row and header is not None:
            yield line, _cells(line.start() + row.start(1), row.group(1)), header
            continue
        header = None
        previous = [passage[a:b] for a, b in _cells(line.start() + row.start(1), row.group(1))] if row else None
        yield line, [], []


def _cells(offset: int, inner: str) -> list[tuple[int, int]]:
    """(start, end) of each table cell's stripped text, as offsets into the passage."""
    cells, position = [], offset
    for cell in inner.split("|"):
        stripped = cell.strip()
        start = position + (cell.index(stripped) if stripped else 0)
        cells.append((start, start + len(stripped)))
        position += len(cell) + 1
    return cells


def within(found: Sequence[Cell], start: int, end: int) -> Cell | None:
    """The cell holding [start, end) of the passage, if any."""
    return next((c for c in found if c.start <= start and end <= c.end), None)
