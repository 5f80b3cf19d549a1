"""The verifier: how well each answer sentence is supported by the passages it cites.

A verifier scores (premise, hypothesis) pairs with P(the premise supports the hypothesis).
The default (`load`) is the project's own cross-encoder (`rag train verifier`, shipped in the
package, with its calibrated threshold) behind `RuleChecked`, which does the arithmetic of
claims such as "more than 40 reviews" itself and looks every number, name and flag of a claim
up in the passage; `OverlapVerifier` is the token-overlap baseline.

`check` scores every sentence of an answer against every passage the model was shown, so
it can tell a sentence its citation supports ("supported") from one another shown passage
supports and from one nothing shown supports ("unsupported"). A sentence written without a
citation (rag.generate.prompt.PLAIN) is cited here to the passage that supports it best. A sentence that another
passage supports is re-cited to that passage (`citation_corrected`, with the model's markers
in `cited_as`; its verdict "mis-cited" says so). What to do with unsupported sentences (strict
mode drops them) is `rag.decision`'s.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from rag import bounds, crossencoder, entities, lexical, models, tables
from rag.answer import Answer
from rag.generate import citations as cites
from rag.retrieve import Hit

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


class RuleChecked:
    """`inner` with what a small cross-encoder cannot judge done by rule: the bounds in each claim
    checked by arithmetic (`rag.bounds`: the model scores the claim with the passage's numbers in
    place of its bounds), and every number, name and flag of the claim's answer looked up in the
    passage (`rag.entities`). A bound that does not hold, or an item the passage lacks, cuts the
    score to a tenth (at most 0.1: below the calibrated threshold, yet still ordered, as ROC AUC
    needs). The model reads the passage with its tables written out by row and column
    (`rag.tables.linearize`), so a cell is seen beside its row label and column header."""

    FAILED = 0.1

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        self.name = inner.name
        self.threshold = inner.threshold

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        checked = [bounds.check(premise, hypothesis) for premise, hypothesis in pairs]
        failed = [bool(c and not c.holds) or bool(entities.missing(premise, hypothesis))
                  for (premise, hypothesis), c in zip(pairs, checked, strict=True)]
        found = self.inner.scores([(tables.linearize(premise).text, c.claim if c else hypothesis)
                                   for (premise, hypothesis), c in zip(pairs, checked, strict=True)])
        return [s * self.FAILED if f else s for s, f in zip(found, failed, strict=True)]


def load(path: str | Path | None = None, device: str | None = None) -> RuleChecked:
    """The verifier every command uses: a trained cross-encoder (default: the shipped one) with
    its bounds, numbers, names and flags checked by rule."""
    return RuleChecked(CrossEncoderVerifier(path, device))


def premise(hit: Hit) -> str:
    """What a sentence is checked against: the passage after its heading path, which names the
    product a table or list belongs to when the passage itself does not (as the reader reads it)."""
    return f"{hit.heading}\n{hit.text}" if hit.heading else hit.text


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
    """What is checked: an answer with its question ("Delhi" alone claims nothing), the answer
    cut to what it adds to the question (`answer_part`). The verifier was trained on claims made
    the same way, from short answers, and a full sentence that restates its question ("The daily
    send limit for verified accounts is $3,500.") scores like its short answer once cut."""
    return f"{question.strip()} {answer_part(question, sentence)}"


# A word, number or amount; code in backticks or a fence is one token, so that a command is claimed
# whole ("`python -m pip list`" for "How do I list the packages?", not "`python -m pip").
_TOKEN = re.compile(r"```.*?```|`[^`\n]+`|[$€£]?-{0,2}\w[\w.,:/'’%+-]*", re.DOTALL)
# Where a sentence says its answer comes from ("According to the passage, ...", "Based on the
# information provided in passage [2], ..."): no passage states that, so it is not claimed.
_ATTRIBUTION = re.compile(r"^\s*(?:according to|based on|as (?:stated|said|described|mentioned) in)\s+(?:the\s+)?"
                          r"(?:[\w-]+\s+){0,3}?(?:passages?|documents?|information|evidence|text|context|tables?|sources?)\b[^,.]{0,60},\s*",
                          re.IGNORECASE)


def answer_part(question: str, sentence: str) -> str:
    """`sentence` from its first to its last content word that `question` does not hold (stemmed,
    stopwords aside): what it says beyond restating the question. The whole sentence when it adds
    no such word, when it restates none of the question's (a short answer), or when the question
    is empty. A lead-in naming where the answer comes from ("According to the passage, ") is left out."""
    sentence = _ATTRIBUTION.sub("", sentence, count=1)
    tokens = [(m.start(), m.start() + len(m.group().rstrip(".,:"))) for m in _TOKEN.finditer(sentence)]
    if not question.strip() or not tokens:
        return sentence.strip()
    asked = set(lexical.terms([question])[0])
    asked_words = {m.group().rstrip(".,:").casefold() for m in _TOKEN.finditer(question)}
    stems = lexical.terms([sentence[a:b] for a, b in tokens])

    def adds(span: tuple[int, int], stem: list[str]) -> bool:
        word = sentence[span[0]:span[1]]  # a number such as "0" or "5.5%" has no BM25 term
        return not set(stem) <= asked if stem else any(c.isdigit() for c in word) and word.casefold() not in asked_words

    new = [span for span, stem in zip(tokens, stems, strict=True) if adds(span, stem)]
    restates = any(stem and set(stem) <= asked for stem in stems)
    if not new or not restates:
        return sentence.strip()  # it adds nothing, or restates nothing: a short answer as it is
    return sentence[new[0][0]:new[-1][1]]


def check(answer: Answer, verifier: Verifier) -> Answer:
    """`answer` with each sentence's support by its citations, verdict and best passage, and its
    faithfulness: the share of sentences some shown passage supports (RAGAS-style; a mis-cited
    sentence is faithful, but not `supported`)."""
    if answer.abstained or not answer.sentences:
        return answer
    start = time.perf_counter()
    shown = [premise(hit) for hit in answer.retrieved]
    claims = [claim(answer.question, s.text) for s in answer.sentences]  # cut once, checked against each passage
    pairs = [(text, said) for said in claims for text in shown]
    flat = verifier.scores(pairs)
    rows = [flat[i * len(shown):(i + 1) * len(shown)] for i in range(len(answer.sentences))]
    sentences = [_named(_judge(s, row, verifier.threshold), shown, answer.question)
                 for s, row in zip(answer.sentences, rows, strict=True)]
    timings = answer.timings | {"verify_s": round(time.perf_counter() - start, 3)}
    faithfulness = round(sum(s.verdict != "unsupported" for s in sentences) / len(sentences), 4)
    return replace(answer, sentences=sentences, citations=cites.cite(sentences, answer.retrieved),
                   faithfulness=faithfulness, timings=timings)


def support(verifier: Verifier, question: str, sentence: str, passages: Sequence[Hit]) -> float:
    """The best support of `sentence` by any passage, as `check` scores it (`Sentence.supported` at the
    verifier's threshold), for a sentence judged on its own (rag.pipeline.Lead, rag.decision.outranked)."""
    said = claim(question, sentence)
    return max(verifier.scores([(premise(hit), said) for hit in passages]), default=0.0)


def _judge(sentence: cites.Sentence, row: list[float], threshold: float) -> cites.Sentence:
    best = max(range(len(row)), key=row.__getitem__)
    if not sentence.citations and row[best] >= threshold:  # a plain sentence, cited after writing
        sentence = replace(sentence, citations=[best + 1])
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


def _named(sentence: cites.Sentence, shown: list[str], question: str) -> cites.Sentence:
    """An unsupported sentence with the numbers, names and flags its best cited passage (or, with
    no citation, the best shown one) lacks (rag.entities), so the verdict says what is wrong."""
    if sentence.supported or sentence.best_marker is None:
        return sentence
    marker = sentence.citations[0] if sentence.citations else sentence.best_marker
    if sentence.citation_support:
        marker = sentence.citations[max(range(len(sentence.citations)), key=sentence.citation_support.__getitem__)]
    return replace(sentence, missing=entities.missing(shown[marker - 1], claim(question, sentence.text)))
