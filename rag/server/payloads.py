"""The JSON a caller reads: an answer's evidence (the chat response's `rag` field, /v1/ask's body),
search hits and the documents listing. Source paths are shown as the collection shows them
(relative to its corpus), never from another collection."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag.answer import Answer
from rag.decision import REASONS
from rag.retrieve import Hit

Display = Callable[[str], str]
CLOSEST = 3
HEADER = "X-RAG"  # the `rag` field again, as compact ASCII JSON, for clients that drop unknown body fields
HEADER_TEXT = 300  # characters of each closest passage in the header (headers must stay small)
HEADER_MAX = 8192


@dataclass(frozen=True)
class Served:
    """An answer and what the chat API needs beside it."""

    answer: Answer
    completion_tokens: int


def sentences(answer: Answer, display: Display) -> list[dict[str, Any]]:
    """Each sentence with its markers, support, verdict and its own citations."""
    out, position = [], 0
    for sentence in answer.sentences:
        mine = answer.citations[position: position + len(sentence.citations)]
        position += len(sentence.citations)
        supports: list[float | None] = [*sentence.citation_support] if sentence.citation_support else [None] * len(mine)
        out.append({"text": sentence.text, "markers": sentence.citations, "support": sentence.support,
                    "verdict": sentence.verdict,
                    "citations": [{"marker": c.marker, "source": display(c.source), "page": c.page, "start": c.start,
                                   "end": c.end, "quote": c.quote, "support": s}
                                  for c, s in zip(mine, supports, strict=False)]})
    return out


def evidence(answer: Answer, display: Display) -> dict[str, Any]:
    """The `rag` field (docs/api.md)."""
    rows = sentences(answer, display)
    return {"question": answer.question, "asked": answer.asked or answer.question, "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason,
            "abstain_message": REASONS.get(answer.abstain_reason or "") if answer.abstained else None,
            "faithfulness": answer.faithfulness, "answered_by": answer.answered_by, "short": answer.short,
            "sentences": [{k: v for k, v in row.items() if k != "citations"} for row in rows],
            "citations": [c for row in rows for c in row["citations"]],
            "closest": [{"source": display(h.source), "page": h.page, "start": h.start, "end": h.end, "text": h.text,
                         "score": h.score} for h in (answer.closest(CLOSEST) if answer.abstained else [])]}


def hit(h: Hit, display: Display) -> dict[str, Any]:
    return {"rank": h.rank, "score": h.score, "source": display(h.source), "page": h.page, "heading": h.heading,
            "start": h.start, "end": h.end, "text": h.text, "dense_rank": h.dense_rank, "bm25_rank": h.bm25_rank}


def pieces(text: str) -> list[str]:
    """The final text in word-sized pieces, as a stream sends them."""
    words = text.split(" ")
    return [w + (" " if n < len(words) - 1 else "") for n, w in enumerate(words)]


def header(evidence: dict[str, Any]) -> str:
    """The `rag` field as the X-RAG header's value: ASCII JSON on one line, closest passages shortened."""
    short = evidence | {"closest": [c | {"text": c["text"][:HEADER_TEXT]} for c in evidence["closest"]]}
    text = _ascii(short)
    if len(text) > HEADER_MAX:  # clients refuse large header blocks (h11: 16 KiB); the body keeps it all
        text = _ascii(short | {"closest": [], "sentences": [], "truncated": True})
    if len(text) > HEADER_MAX:  # a long question (a non-ASCII letter is 6 to 12 characters here), many citations
        cut = {name: short[name][:HEADER_TEXT] for name in ("question", "asked") if name in short}
        text = _ascii(short | cut | {"closest": [], "sentences": [], "citations": [], "truncated": True})
    return text


def _ascii(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
