"""Answering systems side by side on the same SQuAD questions, answerable and not: a generator
alone, the reader alone, and the whole pipeline (reader, generator, verifier, decision).

The corpus is every paragraph of the dataset's articles; a seeded sample of questions is asked.
Each question is either answerable (its gold paragraph is among the passages) or, for a
seeded share, unanswerable (the gold paragraph is removed, and so is any other passage that
contains a gold answer, so that abstaining is the only right reply). Two settings: `gold`
gives the gold paragraph among BM25-ranked distractor paragraphs in shuffled positions;
`retrieved` gives what the real hybrid retriever returns, with the relevance gate of `rag ask`.
SQuAD is evaluation-only here: nothing is tuned on it.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag import lexical, metrics, verify
from rag.answer import Answer, AnswerConfig
from rag.evaluation import retrieval
from rag.evaluation.report import Progress, Report, config_json
from rag.evaluation.retrieval import Dataset
from rag.generate import backends
from rag.generate.backends import Sampling
from rag.generate.weights import DEFAULT_GENERATOR
from rag.index import Index
from rag.pipeline import Pipeline
from rag.reader import Reader
from rag.retrieve import Hit

log = logging.getLogger(__name__)
SETTINGS = ("gold", "retrieved")
SYSTEMS = ("base", "generator", "reader", "pipeline")  # see `rag eval generator --help`


@dataclass(frozen=True)
class Item:
    qid: str
    question: str
    answers: list[str]
    gold: str  # document id of the gold paragraph
    answerable: bool


@dataclass(frozen=True)
class Outcome:
    """One model's answer to one item in one setting, with what scoring needs."""

    item: Item
    setting: str
    answer: Answer
    gold_marker: int | None  # the marker the gold paragraph had, if shown


def items(dataset: Dataset, unanswerable_share: float, sample: int | None = None, seed: int = 0) -> list[Item]:
    """`sample` questions drawn with a fixed seed from the whole dataset (SQuAD's first article
    alone has 810; None: every question), in dataset order, each marked answerable or not with
    that seed."""
    rng = random.Random(seed)
    qids = list(dataset.queries)
    if sample is not None and sample < len(qids):
        chosen = set(rng.sample(qids, sample))
        qids = [q for q in qids if q in chosen]
    return [Item(q, dataset.queries[q], dataset.answers.get(q, []), next(iter(dataset.qrels[q])),
                 rng.random() >= unanswerable_share) for q in qids]


class Passages:
    """The passages each setting shows for an item, from one corpus indexed once."""

    def __init__(self, dataset: Dataset, index: Index, by_path: dict[str, str], k: int, seed: int = 0) -> None:
        self.dataset, self.index, self.k, self.seed = dataset, index, k, seed
        self.path_of = {doc: path for path, doc in by_path.items()}
        self.doc_of = by_path
        self.ids = list(dataset.corpus)
        self.bm25 = lexical.fit(lexical.terms([dataset.corpus[d] for d in self.ids]))

    def gold(self, item: Item) -> list[Hit]:
        """The gold paragraph (if answerable) among BM25's best other paragraphs, shuffled."""
        ranked = lexical.top(self.bm25, [item.question], self.k + 10, len(self.ids))[0]
        others = [self.ids[i] for i in ranked if self.ids[i] != item.gold
                  and not _contains(self.dataset.corpus[self.ids[i]], item.answers)]
        docs = [item.gold, *others[: self.k - 1]] if item.answerable else others[: self.k]
        random.Random(f"{self.seed}:{item.qid}").shuffle(docs)
        return [self._hit(n, doc) for n, doc in enumerate(docs, 1)]

    def retrieved(self, item: Item) -> list[Hit]:
        """The retriever's top k; for an unanswerable item, with the gold paragraph's chunks and
        any chunk holding a gold answer taken out first."""
        hits = self.index.search(item.question, self.k + (0 if item.answerable else 10))
        if not item.answerable:
            hits = [h for h in hits if self.doc_of[h.source] != item.gold and not _contains(h.text, item.answers)]
        return hits[: self.k]

    def is_gold(self, hit: Hit, item: Item) -> bool:
        return self.doc_of.get(hit.source) == item.gold

    def _hit(self, rank: int, doc: str) -> Hit:
        text = self.dataset.corpus[doc]
        return Hit(rank, -rank, self.path_of[doc], None, 0, len(text), 0.0, "", text)


def ask_all(system: Pipeline, passages: Passages, todo: list[Item], setting: str,
        progress: Callable[[int], object] | None = None) -> list[Outcome]:
    out = []
    for item in todo:
        hits = passages.gold(item) if setting == "gold" else passages.retrieved(item)
        answer = system.ask_over(item.question, hits, gate=setting == "retrieved")
        gold = next((n for n, h in enumerate(answer.retrieved, 1) if passages.is_gold(h, item)), None)
        out.append(Outcome(item, setting, answer, gold))
        if progress:
            progress(1)
    return out


# --- scoring ----------------------------------------------------------------------------------


def grounded(answer: Answer, min_share: float = 0.8) -> bool:
    """At least `min_share` of the content terms the answer adds to its question (each sentence cut
    as the verifier reads it, rag.verify.answer_part: a sentence restating the question is not
    penalised for the question's words) occur in the passages it cites (an answer citing nothing is
    not grounded; one with no content terms, such as "It is", is)."""
    cited = {c.marker for c in answer.citations}
    if not cited:
        return False
    added = [verify.answer_part(answer.question, s.text) for s in answer.sentences] or [answer_text(answer)]
    said = set(lexical.terms([" ".join(added)])[0])
    shown = set(lexical.terms([" ".join(answer.retrieved[m - 1].text for m in cited)])[0])
    return not said or len(said & shown) / len(said) >= min_share


def score(outcomes: list[Outcome]) -> dict[str, float | None]:
    """Exact match and F1 of the answer's text and of its short answer (abstentions score 0),
    wrong abstentions and citation accuracy on answerable items; abstention on unanswerable ones;
    the hallucination rate over both: answers to unanswerable items, plus answers to answerable
    ones not grounded in what they cite, over all unanswerable items plus all answered answerable
    ones."""
    answerable = [o for o in outcomes if o.item.answerable]
    unanswerable = [o for o in outcomes if not o.item.answerable]
    answered = [o for o in answerable if not o.answer.abstained]
    made_up = sum(not o.answer.abstained for o in unanswerable) + sum(not grounded(o.answer) for o in answered)
    out = {
        "answerable": len(answerable), "unanswerable": len(unanswerable),
        "exact_match": _best(metrics.exact, answerable, answer_text),
        "f1": _best(metrics.f1, answerable, answer_text),
        "short_exact_match": _best(metrics.exact, answerable, short_text),
        "short_f1": _best(metrics.f1, answerable, short_text),
        "answer_recall": _best(metrics.contains, answerable, answer_text),
        "wrong_abstention": metrics.mean([float(o.answer.abstained) for o in answerable]),
        "citation_accuracy": metrics.mean([float(o.gold_marker is not None and o.gold_marker in _markers(o.answer))
                                    for o in answered]),
        "uncited_answers": metrics.mean([float(not o.answer.citations) for o in answered]),
        "abstention": metrics.mean([float(o.answer.abstained) for o in unanswerable]),
        "hallucination": made_up / (len(unanswerable) + len(answered)) if unanswerable or answered else 0.0,
        "gold_shown": metrics.mean([float(o.gold_marker is not None) for o in answerable]),
        "first_token_p50_s": metrics.percentile([o.answer.timings["first_token_s"] for o in outcomes], 50),
        "total_p50_s": metrics.percentile([o.answer.timings["total_s"] for o in outcomes], 50),
    }
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def outcome_json(o: Outcome) -> dict[str, Any]:
    return {"qid": o.item.qid, "setting": o.setting, "answerable": o.item.answerable, "question": o.item.question,
            "gold_answers": o.item.answers, "answer": o.answer.answer, "abstained": o.answer.abstained,
            "abstain_reason": o.answer.abstain_reason, "answered_by": o.answer.answered_by, "draft": o.answer.draft,
            "short": o.answer.short,
            "evidence": [[e.marker, e.text, e.margin] for e in o.answer.evidence], "cited": sorted(_markers(o.answer)),
            "gold_marker": o.gold_marker, "grounded": grounded(o.answer), "timings": o.answer.timings}


COLUMNS = ["exact_match", "f1", "short_exact_match", "short_f1", "answer_recall",
           "citation_accuracy", "uncited_answers", "wrong_abstention", "abstention",
           "hallucination", "gold_shown", "first_token_p50_s", "total_p50_s"]


def markdown_table(results: dict[str, dict[str, dict[str, float | None]]]) -> str:
    lines = ["| system | setting | " + " | ".join(COLUMNS) + " |", "| --- | --- |" + " ---: |" * len(COLUMNS)]
    for model, settings in results.items():
        for setting, row in settings.items():
            lines.append(f"| {model} | {setting} | " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def answer_text(answer: Answer) -> str:
    """The answer without its citation markers, as scored against gold answers."""
    return " ".join(s.text for s in answer.sentences) if answer.sentences else answer.answer


def short_text(answer: Answer) -> str:
    """The short answer (Answer.short, rag.decision) as scored against gold answers; the answer's
    text when it has none."""
    return answer.short if answer.short is not None else answer_text(answer)


def _best(metric: Callable[[str, str], float], outcomes: list[Outcome], text: Callable[[Answer], str]) -> float | None:
    """`metric` of `text(answer)` against its best gold answer, an abstention scoring 0, averaged."""
    return metrics.mean([max((metric(text(o.answer), g) for g in o.item.answers), default=0.0)
                         * (not o.answer.abstained) for o in outcomes])


def _markers(answer: Answer) -> set[int]:
    return {c.marker for c in answer.citations}


def _contains(text: str, answers: list[str]) -> bool:
    norm = metrics.normalize(text)
    return any(metrics.normalize(a) and metrics.normalize(a) in norm for a in answers)


def evaluate(systems: dict[str, Pipeline], passages: Passages, todo: list[Item], settings: list[str],
             progress: Callable[[int], object] | None = None) -> tuple[dict[str, dict[str, dict[str, float | None]]],
                                                                  list[dict[str, Any]]]:
    """({system: {setting: metrics}}, every outcome as JSON), all systems on the same items."""
    results: dict[str, dict[str, dict[str, float | None]]] = {}
    rows = []
    for name, system in systems.items():
        results[name] = {}
        for setting in settings:
            outcomes = ask_all(system, passages, todo, setting, progress)
            results[name][setting] = score(outcomes)
            rows += [{"system": name, **outcome_json(o)} for o in outcomes]
    return results, rows


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class GeneratorEval:
    """`rag eval generator`: the answering systems to compare, on what."""

    dataset: Path  # SQuAD v1.1 JSON, or HaluEval QA (its last 1000 rows)
    format: str = "squad"
    sample: int | None = 300  # questions drawn with a fixed seed
    limit: int | None = None  # whole articles up to N questions first
    systems: tuple[str, ...] = ("generator", "reader", "pipeline")
    generator: str = DEFAULT_GENERATOR
    adapter: str | None = backends.SHIPPED
    reader: Path | None = None  # None: the shipped reader
    verifier: Path | None = None  # None: the shipped verifier
    settings: tuple[str, ...] = SETTINGS
    k: int = 5
    unanswerable: float = 0.3
    max_new_tokens: int = 64
    cache: Path | None = None
    backend: str | None = None  # how the generator runs (rag.generate.backends.BACKENDS); None: transformers


def systems(config: GeneratorEval, index: Index) -> dict[str, Pipeline]:
    """The answering systems by name: base (the bare generator), generator (with its adapter),
    reader (its span alone), pipeline (reader, generator, verifier and decision)."""
    answer = AnswerConfig(k=config.k, sampling=Sampling(max_new_tokens=config.max_new_tokens))
    reader = Reader(config.reader) if {"reader", "pipeline"} & set(config.systems) else None
    def generator(adapter: str | None) -> backends.Generator:
        return backends.make(config.generator, adapter=adapter, backend=config.backend)

    make = {
        "base": lambda: Pipeline.build(index, generator(None), answer),
        "generator": lambda: Pipeline.build(index, generator(config.adapter), answer),
        "reader": lambda: Pipeline.build(index, None, answer, reader),
        "pipeline": lambda: Pipeline.build(index, generator(config.adapter), answer, reader,
                                           verify.load(config.verifier)),
    }
    return {name: make[name]() for name in config.systems}


def run(config: GeneratorEval, progress: Progress | None = None) -> Report:
    """Every system in every setting on the same questions; `progress` counts the answers."""
    dataset = retrieval.load(config.format, config.dataset, config.limit)
    todo = items(dataset, config.unanswerable, config.sample)
    with tempfile.TemporaryDirectory() as tmp:
        index, by_path = retrieval.build_index(dataset, config.cache or Path(tmp))
        with index:
            made = systems(config, index)
            log.info("%s: %d paragraphs, %d questions (%d made unanswerable); systems: %s", dataset.name,
                     len(dataset.corpus), len(todo), sum(not i.answerable for i in todo),
                     ", ".join(f"{k} = {s.name}" for k, s in made.items()))
            passages = Passages(dataset, index, by_path, config.k)
            if progress is not None:
                progress.reset(len(made) * len(config.settings) * len(todo))
            results, rows = evaluate(made, passages, todo, list(config.settings),
                                     progress.update if progress else None)
    return Report("generator", f"Answering systems: {dataset.name}",
                  config_json(config) | {"models": {k: s.name for k, s in made.items()}}, results,
                  markdown_table(results), f"{len(todo)} questions, {config.k} passages each.", outcomes=rows)
