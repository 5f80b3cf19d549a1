"""Narrow a retrieved passage to the run of its sentences that is most about the question.

A small model on a CPU pays for every prompt token before the first answer token (prefill
is about 2.3 ms a token for the default model on two cores), and short, focused passages
distract it less. So each passage is cut to the contiguous window of whole sentences,
within a character budget, that covers the most of the question's terms. The window is a
slice of the chunk, so file offsets and quotes stay exact.
"""

from __future__ import annotations

import re
from dataclasses import replace

from rag import lexical
from rag.retrieve import Hit

# A sentence ends at . ! or ? followed by a space or the line end (not the point in $2.50), or at a line end.
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?]))+(?:[.!?]+|$)", re.MULTILINE)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of `text`, leading spaces left out."""
    spans = []
    for match in _SENTENCE.finditer(text):
        piece = match.group()
        if piece.strip():
            spans.append((match.start() + len(piece) - len(piece.lstrip()), match.end()))
    return spans


def narrow(question: str, hit: Hit, max_chars: int, keep: tuple[int, int] | None = None) -> Hit:
    """`hit` cut to the window of whole sentences of at most `max_chars` characters that shares
    the most distinct terms with `question`; among those, the one whose best-matching sentence
    comes nearest its start, so that what follows that sentence (often the answer, as after
    a FAQ's question line) is kept. `keep` (character offsets into `hit.text`, such as the
    reader's answer span): only windows holding it are considered. Unchanged when it already fits."""
    if len(hit.text) <= max_chars:
        return hit
    spans = sentence_spans(hit.text)
    if not spans:
        return hit
    wanted = set(lexical.terms([question])[0])
    found = [wanted & set(t) for t in lexical.terms([hit.text[s:e] for s, e in spans])]
    best, best_score = (0, 0), (-1, 0)
    if keep is not None:  # the sentence holding the start of `keep`, in case no window holds all of it
        best = next(((i, i) for i, (s, e) in enumerate(spans) if s <= keep[0] < e), best)
    for first in range(len(spans)):
        last = first
        while last + 1 < len(spans) and spans[last + 1][1] - spans[first][0] <= max_chars:
            last += 1
        if keep is not None and not spans[first][0] <= keep[0] < keep[1] <= spans[last][1]:
            continue
        window = found[first:last + 1]
        top = max(range(len(window)), key=lambda i: len(window[i]))  # first on ties
        score = (len(set().union(*window)), spans[first][0] - spans[first + top][0])
        if score > best_score:
            best, best_score = (first, last), score
    start, end = spans[best[0]][0], spans[best[1]][1]
    if end - start > max_chars:  # one sentence longer than the budget: cut at a space, around `keep` if given
        origin = start if keep is None or keep[1] - start <= max_chars else max(start, keep[0] - max_chars // 2)
        cut = hit.text.rfind(" ", origin, origin + max_chars)
        start, end = origin, (cut if cut > origin and (keep is None or cut >= keep[1]) else origin + max_chars)
    return replace(hit, text=hit.text[start:end], start=hit.start + start, end=hit.start + end)
