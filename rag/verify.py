"""The verifier: how well each answer sentence is supported by the passages it cites.

A verifier scores (premise, hypothesis) pairs with P(the premise supports the hypothesis).
The default (`load`) is the project's own cross-encoder (`rag train verifier`, shipped in the
package, with its calibrated threshold) behind `BoundsChecked`, which does the arithmetic of
claims such as "more than 40 reviews" itself; `OverlapVerifier` is the token-overlap baseline.

`check` scores every sentence of an answer against every passage the model was shown, so
it can tell a sentence its citation supports ("supported") from one another shown passage
supports and from one nothing shown supports ("unsupported"). A sentence that another
passage supports is re-cited to that passage (`citation_corrected`, with the model's markers
in `cited_as`; its verdict "mis-cited" says so). What to do with unsupported sentences (strict
mode drops them) is `rag.decision`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from rag import bounds, crossencoder, lexical, models
from rag.answer import Answer
from rag.generate import citations as cites

SPEC = "verifier.json"  # written by `rag train verifier`: base model, max_length, threshold, record
SHIPPED_VERIFIER = Path(__file__).parent / "shipped" / "verifier-minilm"
VERDICTS = ("supported", "mis-cited", "unsupported")


class Verifier(Protocol):
    name: str
    threshold: float  # scores at or above it count as supported

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(supported) in [0, 1] for each (premise, hypothesis)."""
        ...


class CrossEncoderVerifier:
    """A cross-encoder folder written by `rag train verifier` (default: the shipped one)."""

    def __init__(self, path: str | Path | None = None, device: str | None = None, batch_size: int = 32) -> None:
        self.path = Path(path) if path else SHIPPED_VERIFIER
        spec_file = self.path / SPEC
        if not spec_file.is_file():
            raise models.ModelNotFoundError(f"verifier {self.path} has no {SPEC} (write one with rag train verifier)")
        self.spec = json.loads(spec_file.read_text())
        self.name = self.path.name
        self.threshold = float(self.spec["threshold"])
        self.device = device
        self.batch_size = batch_size

    @cached_property
    def model(self) -> Any:
        return crossencoder.load(self.path, SPEC, self.device)

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        if not pairs:
            return []
        found = self.model.predict(list(pairs), batch_size=self.batch_size, show_progress_bar=False,
                                   activation_fn=torch.nn.Sigmoid())
        return [float(s) for s in found]


class BoundsChecked:
    """`inner` with the bounds in each claim checked by arithmetic (`rag.bounds`): the model
    scores the claim with the passage's numbers in place of its bounds, and a bound that does
    not hold cuts that score to a tenth (at most 0.1: below the calibrated threshold, yet still
    ordered, as ROC AUC needs)."""

    FAILED = 0.1

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        self.name = inner.name
        self.threshold = inner.threshold

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        checked = [bounds.check(premise, hypothesis) for premise, hypothesis in pairs]
        found = self.inner.scores([(premise, c.claim if c else hypothesis)
                                   for (premise, hypothesis), c in zip(pairs, checked, strict=True)])
        return [s if c is None or c.holds else s * self.FAILED for s, c in zip(found, checked, strict=True)]


def load(path: str | Path | None = None, device: str | None = None) -> BoundsChecked:
    """The verifier every command uses: a trained cross-encoder (default: the shipped one) with
    its bounds checked."""
    return BoundsChecked(CrossEncoderVerifier(path, device))


class OverlapVerifier:
    """Baseline: the share of the hypothesis's content terms (stemmed, stopwords out) found in the premise."""

    name = "token-overlap"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        premises = lexical.terms([p for p, _ in pairs])
        hypotheses = lexical.terms([h for _, h in pairs])
        return [len(set(h) & set(p)) / len(set(h)) if h else 0.0
                for p, h in zip(premises, hypotheses, strict=True)]


def claim(question: str, sentence: str) -> str:
    """What is checked: an answer sentence with its question ("Delhi" alone claims nothing).
    The verifier was trained on claims made the same way."""
    return f"{question.strip()} {sentence.strip()}"


def check(answer: Answer, verifier: Verifier) -> Answer:
    """`answer` with each sentence's support by its citations, verdict and best passage, and its
    faithfulness: the share of sentences some shown passage supports (RAGAS-style; a mis-cited
    sentence is faithful, but not `supported`)."""
    if answer.abstained or not answer.sentences:
        return answer
    start = time.perf_counter()
    shown = [hit.text for hit in answer.retrieved]
    pairs = [(text, claim(answer.question, s.text)) for s in answer.sentences for text in shown]
    flat = verifier.scores(pairs)
    rows = [flat[i * len(shown):(i + 1) * len(shown)] for i in range(len(answer.sentences))]
    sentences = [_judge(s, row, verifier.threshold) for s, row in zip(answer.sentences, rows, strict=True)]
    timings = answer.timings | {"verify_s": round(time.perf_counter() - start, 3)}
    faithfulness = round(sum(s.verdict != "unsupported" for s in sentences) / len(sentences), 4)
    return replace(answer, sentences=sentences, citations=cites.cite(sentences, answer.retrieved),
                   faithfulness=faithfulness, timings=timings)


def _judge(sentence: cites.Sentence, row: list[float], threshold: float) -> cites.Sentence:
    best = max(range(len(row)), key=row.__getitem__)
    cited = [row[n - 1] for n in sentence.citations]
    support = max(cited, default=0.0)
    if support >= threshold:
        verdict = "supported"
    elif row[best] >= threshold:
        return replace(sentence, citations=[best + 1], support=round(row[best], 4),
                       citation_support=[round(row[best], 4)], supported=True, verdict="mis-cited",
                       best_marker=best + 1, citation_corrected=True,
                       cited_as=sentence.cited_as if sentence.citation_corrected else sentence.citations)
    else:
        verdict = "unsupported"
    return replace(sentence, support=round(support, 4), citation_support=[round(c, 4) for c in cited],
                   supported=verdict == "supported", verdict=verdict, best_marker=best + 1)
