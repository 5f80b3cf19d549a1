"""The extractive reader: finds the answer's span in the passages, or says none holds it.

A span head (start and end logits per token) on the packaged MiniLM body, trained by this
project (`rag train reader`). Each passage is read with the question in one batched forward
pass (passages longer than the model's window are read in overlapping windows). A span's
score is its start logit plus its end logit; the passage's no-answer score is the same sum
at the [CLS] token, which training points at for passages that do not hold the answer. So
`margin` = score - no_answer says how much more the reader believes the span than "nothing
here", on one scale for every passage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from rag import crossencoder, models, tables
from rag.retrieve import Hit
from rag.tables import linearize

SPEC = "reader.json"  # written by `rag train reader`: base model, max_length, thresholds, record
SHIPPED_READER = Path(__file__).parent / "shipped" / "reader-minilm"
_BREAK = re.compile(r"[\n|]")  # an answer never runs across lines or table cells
_WORD = re.compile(r"\w")  # nor is it markup alone ("##", "-")
_NUMBER = re.compile(r"\d+(?:\.\d+)*\.?")


@dataclass(frozen=True)
class Span:
    passage: int  # 0-based index of the passage it was read from
    start: int  # character offsets into that passage's text
    end: int
    text: str
    score: float  # start logit + end logit
    no_answer: float  # the passage's [CLS] start + end logits: its "nothing here" score

    @property
    def margin(self) -> float:
        """How far the span beats its passage's no-answer score (positive: the reader answers)."""
        return self.score - self.no_answer


class SpanReader(Protocol):
    """What answering needs of a reader (`Reader`, or a fake in tests)."""

    name: str
    policy: dict[str, Any]  # its calibrated answer-or-abstain policy (rag.decision.Policy's fields); {}: defaults

    def read_hits(self, question: str, hits: Sequence[Hit], top: int = 3) -> list[Span]: ...


@dataclass(frozen=True)
class Window:
    """One tokenized window of a passage: which passage, and each token's character span in it
    (None for question and special tokens, which can never be part of an answer)."""

    passage: int
    offsets: list[tuple[int, int] | None]


def best_spans(start: Sequence[float], end: Sequence[float], offsets: Sequence[tuple[int, int] | None],
               max_tokens: int, top: int) -> list[tuple[int, int, float]]:
    """The `top` best (first token, last token, score) spans of one window: the first token
    at or before the last, at most `max_tokens` long, both inside the passage."""
    inside = [i for i, o in enumerate(offsets) if o is not None]
    best_starts = sorted(inside, key=lambda i: -start[i])[: max(top * 4, 20)]
    found = []
    for i in best_starts:
        for j in inside:
            if i <= j < i + max_tokens:
                found.append((i, j, float(start[i] + end[j])))
    found.sort(key=lambda s: -s[2])
    return found[:top]


class Reader:
    """A reader folder written by `rag train reader` (default: the shipped one)."""

    def __init__(self, path: str | Path | None = None, device: str | None = None,
                 max_answer_tokens: int = 30, stride: int = 64) -> None:
        self.path = Path(path) if path else SHIPPED_READER
        spec_file = self.path / SPEC
        if not spec_file.is_file():
            raise models.ModelNotFoundError(f"reader {self.path} has no {SPEC} (write one with rag train reader)")
        self.spec = json.loads(spec_file.read_text())
        self.name = self.path.name
        self.policy: dict[str, Any] = dict(self.spec.get("policy", {}))
        self.device = device or "cpu"
        self.max_length = int(self.spec["max_length"])
        self.max_answer_tokens = max_answer_tokens
        self.stride = min(stride, self.max_length // 4)  # windows must overlap less than they are long

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(models.resolve(self.spec["base"])))

    @cached_property
    def model(self) -> Any:
        return load_model(self.path, self.spec["base"], self.device)

    def read(self, question: str, passages: Sequence[str], top: int = 3,
             contexts: Sequence[str] | None = None) -> list[Span]:
        """The best `top` spans over all `passages`, best first, none overlapping another;
        `contexts` are the passages' heading paths, read beside them but never answered from.
        A table cell whose row or column the question names another of ("monthly" for a cell
        of the "Daily send limit" column) is never a span: the model, trained mostly on prose,
        reads a row's values alike (rag.tables.misread)."""
        import torch

        if not passages:
            return []
        views = [linearize(p, c) for p, c in zip(passages, contexts or [""] * len(passages), strict=True)]
        texts = [v.text for v in views]
        encoded, windows = encode(self.tokenizer, question, texts, self.max_length, self.stride)
        with torch.inference_mode():
            out = self.model(**{k: v.to(self.device) for k, v in encoded.items()})
        starts, ends = out.start_logits.float().cpu().tolist(), out.end_logits.float().cpu().tolist()
        grids = [tables.cells(p) for p in passages]
        spans = []
        for span in decode(windows, starts, ends, texts, self.max_answer_tokens, 3 * top):
            where = views[span.passage].original(span.start, span.end)
            cell = tables.within(grids[span.passage], *where) if where is not None else None
            if where is not None and (cell is None or tables.misread(question, cell) is None):
                spans.append(Span(span.passage, *where, passages[span.passage][slice(*where)], span.score,
                                  span.no_answer))
        return spans[:top]

    def read_hits(self, question: str, hits: Sequence[Hit], top: int = 3) -> list[Span]:
        """`read` over retrieved passages with their heading paths; a span's `passage` indexes `hits`."""
        return self.read(question, [h.text for h in hits], top, [h.heading for h in hits])


def decode(windows: Sequence[Window], starts: Sequence[Sequence[float]], ends: Sequence[Sequence[float]],
           passages: Sequence[str], max_tokens: int, top: int) -> list[Span]:
    """The best spans of all windows, by margin over their passage's no-answer score (the lowest
    of its windows' [CLS] scores, so a passage read in several windows is judged by the window
    that sees its answer), without overlaps; at most `top`. A span never crosses a line break
    or a table cell's border and always holds a letter or digit: an answer is a value, not the
    end of one line and the start of the next, nor a heading's "##" or number ("4.2. for
    Statements": no value) (the reader, trained on prose, otherwise runs on through lists and tables)."""
    no_answer: dict[int, float] = {}
    found: list[tuple[int, int, int, float]] = []
    for window, start, end in zip(windows, starts, ends, strict=True):
        null = start[0] + end[0]
        no_answer[window.passage] = min(no_answer.get(window.passage, null), null)
        for i, j, score in best_spans(start, end, window.offsets, max_tokens, 4 * top):
            first, last = window.offsets[i], window.offsets[j]
            assert first is not None and last is not None
            passage = passages[window.passage]
            text = passage[first[0]:last[1]]
            if not _BREAK.search(text) and _WORD.search(text) and not _numbering(passage, first[0], last[1]):
                found.append((window.passage, first[0], last[1], score))
    spans = [Span(n, a, b, passages[n][a:b], score, no_answer[n]) for n, a, b, score in found]
    return _distinct(sorted(spans, key=lambda s: -s.margin))[:top]


def _numbering(passage: str, start: int, end: int) -> bool:
    """Whether passage[start:end] numbers its line's heading or list item ("4.2." of "## 4.2. for
    Statements", "3" of "3) Run ..."): a number first on its line and closed by "." or ")"."""
    if not _NUMBER.fullmatch(passage, start, end):  # most spans: no need to look at the line
        return False
    closed = passage[end - 1:end] == "." or passage[end:end + 1] in (".", ")")
    return closed and not passage[passage.rfind("\n", 0, start) + 1:start].strip("#*>- \t")


def encode(tokenizer: Any, question: str | Sequence[str], passages: Sequence[str], max_length: int,
           stride: int) -> tuple[Any, list[Window]]:
    """Question + passage windows as tensors, and what each window covers. `question` is one
    for all passages, or one per passage."""
    questions = [question] * len(passages) if isinstance(question, str) else list(question)
    encoded = tokenizer(questions, list(passages), truncation="only_second", max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding=True,
                        return_tensors="pt")
    windows = []
    for n, passage in enumerate(encoded.pop("overflow_to_sample_mapping").tolist()):
        kinds = encoded.sequence_ids(n)
        offsets = [tuple(o) if kind == 1 else None for o, kind in zip(encoded["offset_mapping"][n].tolist(),
                                                                        kinds, strict=True)]
        windows.append(Window(passage, offsets))
    encoded.pop("offset_mapping")
    return encoded, windows


def best_per_passage(spans: list[Span]) -> list[Span]:
    """Each passage's best span, in the order given (best first): what answering shows and cuts around."""
    return [s for n, s in enumerate(spans) if all(o.passage != s.passage for o in spans[:n])]


def _distinct(spans: list[Span]) -> list[Span]:
    """Spans in order, without a later one that overlaps an earlier one in the same passage."""
    kept: list[Span] = []
    for span in spans:
        if not any(k.passage == span.passage and k.start < span.end and span.start < k.end for k in kept):
            kept.append(span)
    return kept


def trainable(base: str) -> tuple[Any, Any]:
    """Tokenizer and a span-head model on `base`, word embeddings frozen (the saved weights stay small)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    path = models.resolve(base)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    with models.quiet_loading():
        model = AutoModelForQuestionAnswering.from_pretrained(str(path))
    for name, param in model.named_parameters():
        param.requires_grad = "word_embeddings" not in name
    return tokenizer, model


def load_model(path: Path, base: str, device: str = "cpu") -> Any:
    """The base model with a span head and the trained weights from `path` on top."""
    from transformers import AutoModelForQuestionAnswering

    with models.quiet_loading():
        model = AutoModelForQuestionAnswering.from_pretrained(str(models.resolve(base)))
    crossencoder.load_weights(model, path, base)
    return model.to(device).eval()
