"""Citation markers in a generated answer: parse them, check them, and point each at a quoted span.

The model writes sentences followed by markers such as [2] or [1, 3] that number the passages
it was shown. A marker naming no passage is dropped and counted. Each valid citation gets the
span of its passage that shares the most content terms with the sentence: the quote a reader
checks the sentence against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag import lexical
from rag.generate import excerpt
from rag.retrieve import Hit

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])*)(?:\s+|$)")


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


@dataclass(frozen=True)
class Parsed:
    sentences: list[Sentence]
    citations: list[Citation]  # one per (sentence, marker) pair, in reading order
    invalid_markers: int  # markers that named no passage, removed


def split_sentences(answer: str) -> list[str]:
    """Sentences with their trailing markers ("It rains [1]. Then [2]" -> two sentences)."""
    out, pos = [], 0
    for match in _SENTENCE_END.finditer(answer):
        if match.end() > pos:
            out.append(answer[pos:match.end()].strip())
            pos = match.end()
    out.append(answer[pos:].strip())
    return [s for s in out if s]


def parse(answer: str, passages: list[Hit]) -> Parsed:
    """Sentences and citations of `answer`, whose markers number `passages` from 1."""
    sentences, citations, invalid = [], [], 0
    for raw in split_sentences(answer):
        markers: list[int] = []
        for group in MARKER.findall(raw):
            for number in (int(n) for n in group.split(",")):
                if not 1 <= number <= len(passages):
                    invalid += 1
                elif number not in markers:
                    markers.append(number)
        text = " ".join(MARKER.sub(" ", raw).split())
        text = re.sub(r"\s+([.!?,;:])", r"\1", text)
        if not text.strip(".!?,;: "):
            continue  # a stray marker on its own is not a sentence
        sentences.append(Sentence(text, markers))
        citations += [quote(text, n, passages[n - 1]) for n in markers]
    return Parsed(sentences, citations, invalid)


def quote(sentence: str, marker: int, hit: Hit) -> Citation:
    """The sentence of the passage sharing the most content terms with `sentence` (first on ties);
    the whole passage when none shares any."""
    wanted = set(lexical.terms([sentence])[0])
    spans = excerpt.sentence_spans(hit.text)
    found = lexical.terms([hit.text[s:e] for s, e in spans])
    best, best_score = (0, len(hit.text)), 0
    for span, terms in zip(spans, found, strict=True):
        score = len(wanted & set(terms))
        if score > best_score:
            best, best_score = span, score
    start, end = best
    return Citation(marker, hit.chunk_id, hit.source, hit.page, hit.start + start, hit.start + end,
                    hit.text[start:end])
