"""Evaluate whole answers: the real pipeline (retrieve, generate, verify) over a question set.

Questions come from SQuAD (answerable, with gold answers) or from a JSON-lines file of
`{"question": ..., "answers": [...]?, "answerable": bool?, "id": ...?}` so users can bring
their own, or of follow-ups in conversations (rag.evaluation.conversations). Each finished
question is appended to outcomes.jsonl at once, so a stopped run resumes where it was, and the
metrics are computed from that file:

- faithfulness (RAGAS-style): answer sentences supported by some passage the model was shown;
- citation recall and precision (ALCE-style): a sentence's citations support it; each
  citation supports its sentence on its own (the verifier scores passages one at a time, so a
  citation is needed exactly when it supports alone);
- exact match and token F1 against gold answers; answered right with the right source (a gold
  answer in the answer, and in a passage it cites); abstention on unanswerable questions,
  wrong abstention on answerable ones, and how often retrieval found a passage holding a gold
  answer; latency percentiles.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rag import metrics, verify
from rag.answer import Answer, AnswerConfig
from rag.conversation import DEFAULT_CONDENSER, Turn
from rag.evaluation import conversations, plots
from rag.evaluation.generator import answer_text, short_text
from rag.evaluation.report import OUTCOMES, Progress, Report, config_json
from rag.evaluation.retrieval import Dataset, build_index, load_squad
from rag.fsutil import atomic_path, atomic_write_text, read_jsonl
from rag.generate import backends
from rag.generate.weights import DEFAULT_GENERATOR
from rag.index import Index
from rag.metrics import exact, f1, normalize
from rag.pipeline import Pipeline
from rag.reader import Reader
from rag.settings import Settings

log = logging.getLogger(__name__)
RUN = "run.json"
FORMATS = ("squad", "jsonl", "conversation")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: list[str]  # gold answers; empty when unknown
    answerable: bool = True
    history: tuple[Turn, ...] = ()  # the turns before it, for a follow-up


def from_dataset(dataset: Dataset) -> list[Question]:
    """SQuAD-style datasets: every question answerable, gold answers where the dataset has them."""
    return [Question(qid, text, dataset.answers.get(qid, [])) for qid, text in dataset.queries.items()]


def load_jsonl(path: Path, problems: list[str]) -> list[Question]:
    """Questions from JSON lines; a malformed line is added to `problems` (with its line number)
    and skipped. `answerable` defaults to true; `id` to the line number."""
    out: list[Question] = []
    seen: set[str] = set()
    for n, row in enumerate(read_jsonl(path, ("question",), problems), 1):
        if (question := _question(path, n, row, seen, problems)) is not None:
            out.append(question)
    return out


def _question(path: Path, n: int, row: dict[str, Any], seen: set[str], problems: list[str]) -> Question | None:
    """Line `n`'s question, or None with the reason added to `problems`."""
    answers = row.get("answers", [])
    answerable = row.get("answerable", True)
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        problems.append(f"{path}: question {n} ({row['question'][:40]!r}): 'answers' must be a list of strings")
    elif not isinstance(answerable, bool):
        problems.append(f"{path}: question {n} ({row['question'][:40]!r}): 'answerable' must be true or false")
    elif str(row.get("id", n)) in seen:
        problems.append(f"{path}: question {n}: duplicate id {row.get('id')!r}")
    else:
        seen.add(str(row.get("id", n)))
        return Question(str(row.get("id", n)), row["question"], answers, answerable)
    return None


def load_conversations(path: Path, problems: list[str]) -> list[Question]:
    """Follow-ups from JSON lines (rag.evaluation.conversations), each followed by its
    standalone question (asked without history); a malformed line is added to `problems`."""
    out: list[Question] = []
    seen: set[str] = set()
    for n, row in enumerate(read_jsonl(path, ("question", "standalone"), problems), 1):
        try:
            turns = conversations.history(row.get("history"))
        except ValueError as exc:
            problems.append(f"{path}: question {n} ({row['question'][:40]!r}): {exc}")
            continue
        if (question := _question(path, n, row, seen, problems)) is not None:
            out += [replace(question, history=turns),
                    replace(question, id=question.id + conversations.STANDALONE, question=row["standalone"])]
    return out


def outcome(question: Question, answer: Answer, threshold: float) -> dict[str, Any]:
    """What one question produced, with everything the metrics need (one line of outcomes.jsonl);
    `threshold`: the verifier's, at which a citation's support counts."""
    gold = question.answers
    found = [normalize(g) for g in gold if normalize(g)]
    shown = [normalize(h.text) for h in answer.retrieved]
    cited = {c.marker for c in answer.citations}
    said = f" {normalize(answer_text(answer))} "
    return {"id": question.id, "question": question.question, "answerable": question.answerable, "gold": gold,
            "answered_as": answer.question, "answer": answer.answer, "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason,
            "answered_by": answer.answered_by, "draft": answer.draft,
            "em": max((exact(answer_text(answer), g) for g in gold), default=None),
            "f1": max((f1(answer_text(answer), g) for g in gold), default=None),
            "short": answer.short, "short_em": max((exact(short_text(answer), g) for g in gold), default=None),
            "short_f1": max((f1(short_text(answer), g) for g in gold), default=None),
            "gold_retrieved": any(g in text for g in found for text in shown) if found else None,
            "right_and_cited": (not answer.abstained and any(f" {g} " in said for g in found)
                                and any(g in shown[m - 1] for g in found for m in cited)) if found else None,
            "sentences": [asdict(s) for s in answer.sentences], "faithfulness": answer.faithfulness,
            "threshold": threshold, "sources": [h.source for h in answer.retrieved], "timings": answer.timings}


def ask_all(pipeline: Pipeline, questions: list[Question], out: Path | None,
            progress: Callable[[int], object] | None = None) -> list[dict[str, Any]]:
    """Answer (and check, and decide) every question not already in out/outcomes.jsonl; returns
    all outcomes. The pipeline must have a verifier: its threshold is what support is judged by."""
    if pipeline.verifier is None:
        raise ValueError("evaluating answers needs a verifier in the pipeline")
    threshold = pipeline.verifier.threshold
    done = _finished(out) if out else {}
    todo = [q for q in questions if q.id not in done]
    if progress and done:
        progress(len(questions) - len(todo))
    handle = (out / OUTCOMES).open("a", encoding="utf-8") if out else None
    try:
        for question in todo:
            row = outcome(question, pipeline.ask(question.question, question.history), threshold)
            done[question.id] = row
            if handle:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            if progress:
                progress(1)
    finally:
        if handle:
            handle.close()
    return [done[q.id] for q in questions if q.id in done]


def evaluate(pipeline: Pipeline, questions: list[Question], out: Path | None, title: str,
             progress: Callable[[int], object] | None = None, config: dict[str, Any] | None = None,
             scorer: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> Report:
    """`ask_all` (outcomes streamed into `out`: call `prepare` on it first), then the metrics
    (by `scorer`, default `score`)."""
    outcomes = ask_all(pipeline, questions, out, progress)
    metrics = (scorer or score)(outcomes)
    draw = {"metrics.png": _quality, "support.png": _support, "latency.png": _latency}
    return Report("answers", title, config or {}, metrics, table(metrics),
                  plots={name: functools.partial(f, metrics, outcomes) for name, f in draw.items()})


def prepare(out: Path, settings: dict[str, Any]) -> None:
    """Make `out` for a run with `settings`, or check that the run already there used the same
    ones (resuming under other settings would mix two experiments in one report)."""
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    run_file = out / RUN
    if run_file.is_file():
        previous = json.loads(run_file.read_text())
        if previous.get("fingerprint") != fingerprint:
            raise ValueError(f"{out} holds a run with other settings ({previous.get('settings')}); "
                             "choose another --out folder, or delete that one to start again")
        return
    atomic_write_text(run_file, json.dumps({"fingerprint": fingerprint, "settings": settings}, indent=1,
                                           default=str) + "\n")


def _finished(out: Path) -> dict[str, dict[str, Any]]:
    """Outcomes already written; a line cut short by a crash is dropped (its question runs again)."""
    problems: list[str] = []
    path = out / OUTCOMES
    rows = read_jsonl(path, ("id",), problems) if path.is_file() else []
    if problems:  # rewrite without the torn line, so appending starts on a fresh line
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {r["id"]: r for r in rows}


def score(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's metrics over `outcomes` (None where no question allows the metric)."""
    answerable = [o for o in outcomes if o["answerable"]]
    unanswerable = [o for o in outcomes if not o["answerable"]]
    answered = [o for o in outcomes if not o["abstained"]]
    sentences = [s for o in answered for s in o["sentences"]]
    checked = [s for s in sentences if s["verdict"] is not None]
    citations = [c >= o["threshold"] for o in answered for s in o["sentences"] if s["verdict"] is not None
                 for c in s["citation_support"]]
    graded = [o for o in answerable if o["f1"] is not None]
    retrieved = [o for o in outcomes if o["gold_retrieved"] is not None]
    return {
        "questions": len(outcomes), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "sentences": len(checked),
        "faithfulness": metrics.share([s["verdict"] in ("supported", "mis-cited") for s in checked]),
        "citation_recall": metrics.share([bool(s["supported"]) for s in checked]),
        "citation_precision": metrics.share(citations),
        "exact_match": metrics.mean([o["em"] for o in graded]),
        "f1": metrics.mean([o["f1"] for o in graded]),
        # Outcomes written before short answers were recorded score their whole answer.
        "short_exact_match": metrics.mean([o.get("short_em", o["em"]) for o in graded]),
        "short_f1": metrics.mean([o.get("short_f1", o["f1"]) for o in graded]),
        "right_and_cited": metrics.share([o["right_and_cited"] for o in graded
                                          if o.get("right_and_cited") is not None]),
        "abstention": metrics.share([o["abstained"] for o in unanswerable]),
        "wrong_abstention": metrics.share([o["abstained"] for o in answerable]),
        "gold_retrieved": metrics.share([o["gold_retrieved"] for o in retrieved]),
        **{f"{name}_p{p}_s": metrics.percentile([o["timings"].get(f"{name}_s") for o in outcomes], p)
           for name in ("first_token", "total", "verify") for p in (50, 90, 99)},
    }


def score_conversations(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The conversation format's metrics: the follow-ups', the standalone questions' beside them."""
    follow_ups, standalone = conversations.split(outcomes)
    return conversations.compare(score(follow_ups), score(standalone), follow_ups)


def with_gold(questions: list[Question]) -> list[Question]:
    """The answerable questions that have a gold answer to look for."""
    return [q for q in questions if q.answerable and any(normalize(a) for a in q.answers)]


def retrieval(index: Index, questions: list[Question], modes: Sequence[str], k: int = 5,
              progress: Callable[[int], None] | None = None) -> dict[str, dict[str, float | None]]:
    """Retrieval alone, per mode, over the questions that have gold answers (no relevance labels
    needed): how often a gold answer is in one of the top k passages, the mean reciprocal rank of
    the first such passage, and query latency."""
    graded = with_gold(questions)
    results: dict[str, dict[str, float | None]] = {}
    for mode in modes:
        found, ranks, latencies = [], [], []
        for question in graded:
            start = time.perf_counter()
            hits = index.search(question.question, k, mode)
            latencies.append(time.perf_counter() - start)
            gold = [normalize(a) for a in question.answers if normalize(a)]
            first = next((h.rank for h in hits if any(g in normalize(h.text) for g in gold)), None)
            found.append(first is not None)
            ranks.append(1 / first if first else 0.0)
            if progress:
                progress(1)
        results[mode] = {"questions": len(graded), f"answer_in_top_{k}": metrics.share(found),
                         "mrr": metrics.mean(ranks),
                         "latency_p50_ms": metrics.percentile([1000 * t for t in latencies], 50)}
    return results


def table(metrics: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {'n/a' if v is None else v} |" for k, v in metrics.items())
    return f"| metric | value |\n| --- | ---: |\n{rows}"


def _quality(metrics: dict[str, Any], outcomes: list[dict[str, Any]], path: Path) -> None:
    """Quality bars, one per metric that has a value."""
    plt = plots.pyplot()
    names = ["faithfulness", "citation_recall", "citation_precision", "exact_match", "f1", "short_f1",
             "right_and_cited", "abstention", "wrong_abstention", "gold_retrieved"]
    shown = [n for n in names if metrics.get(n) is not None]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(shown, [metrics[n] for n in shown], color="tab:blue")
    ax.set(xlim=(0, 1), title=f"Answer quality ({metrics['questions']} questions)")
    ax.invert_yaxis()
    plots.save(fig, path)


def _support(metrics: dict[str, Any], outcomes: list[dict[str, Any]], path: Path) -> None:
    """Sentence support by the cited passages, by verdict."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    sentences = [s for o in outcomes for s in o["sentences"] if s["support"] is not None]
    for verdict in ("supported", "mis-cited", "unsupported"):
        values = [s["support"] for s in sentences if s["verdict"] == verdict]
        if values:
            ax.hist(values, bins=20, range=(0, 1), alpha=0.7, label=f"{verdict} ({len(values)})")
    ax.set(xlabel="support by cited passages", ylabel="sentences", title="Sentence support")
    ax.legend()
    plots.save(fig, path)


def _latency(metrics: dict[str, Any], outcomes: list[dict[str, Any]], path: Path) -> None:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist([o["timings"]["total_s"] for o in outcomes], bins=30, color="tab:green")
    ax.set(xlabel="seconds per question (retrieve, generate, verify)", ylabel="questions", title="Latency")
    plots.save(fig, path)


@dataclass(frozen=True)
class AnswersEval:
    """`rag eval answers`: the question set, the index and the pipeline's parts."""

    dataset: Path  # SQuAD JSON, or JSON lines of questions
    format: str  # squad or jsonl
    index: str  # an index folder, or "build" to index a SQuAD dataset's paragraphs (under `cache`)
    limit: int | None = None
    cache: Path | None = None
    generator: str = DEFAULT_GENERATOR
    adapter: str | None = backends.SHIPPED
    verifier: Path | None = None
    reader: Path | None = None  # None: the shipped reader
    use_reader: bool = True
    strict: bool = False
    k: int = 5
    condenser: str | None = None  # how follow-ups are rewritten (rag.conversation); None: $RAG_CONDENSER or the default
    backend: str | None = None  # how the generator runs (rag.generate.backends.BACKENDS); None: transformers


def run(config: AnswersEval, out: Path | None = None, progress: Progress | None = None) -> Report:
    """The whole pipeline over the questions; with `out`, each outcome is appended to
    out/outcomes.jsonl as it comes and a rerun resumes (under the same config only)."""
    problems: list[str] = []
    if config.format == "squad":
        dataset = load_squad(config.dataset, config.limit)
        questions = from_dataset(dataset)
    elif config.format == "conversation":
        questions = load_conversations(config.dataset, problems)[: 2 * config.limit if config.limit else None]
    else:
        questions = load_jsonl(config.dataset, problems)[: config.limit]
    generator = backends.make(config.generator, adapter=config.adapter, backend=config.backend)
    checker = verify.load(config.verifier)
    condenser = config.condenser or Settings.from_env().condenser or DEFAULT_CONDENSER
    settings = config_json(config) | {"generator": generator.name, "verifier": checker.name, "condenser": condenser}
    if out:
        prepare(out, settings)
    with ExitStack() as stack:
        if config.index == "build":
            if config.format != "squad":
                raise ValueError("--index build indexes a SQuAD dataset's paragraphs; for JSON-lines questions "
                                 "pass --index DIR (an index of the documents they are about)")
            work = config.cache or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            index = stack.enter_context(build_index(dataset, work)[0])
        else:
            index = stack.enter_context(Index(config.index))
        reader = Reader(config.reader) if config.use_reader else None
        answers = Pipeline.build(index, generator, AnswerConfig(k=config.k), reader, checker, config.strict,
                                 condenser=condenser)
        log.info("%d questions over %s with %s, verifier %s", len(questions), config.index, answers.name,
                 checker.name)
        if progress is not None:
            progress.reset(len(questions))
        report = evaluate(answers, questions, out, f"Answers: {config.dataset.name}",
                          progress.update if progress else None, settings,
                          score_conversations if config.format == "conversation" else None)
    report.problems = problems
    return report
