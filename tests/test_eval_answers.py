"""`rag eval answers`: question files, metrics by hand, resuming after an interruption, report files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rag.answer import Answer, Event
from rag.evaluation import answers as ea
from rag.generate.prompt import ABSTAIN
from rag.pipeline import Pipeline
from tests.test_verify import PASSAGES, KeywordVerifier, answer, hit


class FakeAnswerer:
    """Answers from a script: question -> answer text over PASSAGES (ABSTAIN abstains)."""

    name = "scripted"
    reader = None

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script
        self.asked: list[str] = []

    def stream(self, question: str) -> Iterator[Event]:
        yield self.ask(question)

    def ask(self, question: str) -> Answer:
        self.asked.append(question)
        text = self.script[question]
        if text == ABSTAIN:
            return Answer(question, text, True, "model_abstained", [], [], [hit(1, PASSAGES[0])], [], 0, "m", 3,
                          {"total_s": 0.5})
        made = answer(text, PASSAGES)
        return Answer(question, *[getattr(made, f) for f in ("answer", "abstained", "abstain_reason", "sentences",
                                                             "citations", "retrieved", "dropped", "invalid_markers",
                                                             "model", "prompt_tokens", "timings")])


def checked(answerer: FakeAnswerer) -> Pipeline:
    return Pipeline(answerer, KeywordVerifier())  # type: ignore[arg-type]


SCRIPT = {"Where do bees live?": "Bees live in hives [1].",
          "Where do ants live?": "In nests [3]. Cows fly [2].",
          "Who founded the hive?": ABSTAIN,
          "What do wasps build?": "Wasps build paper nests [3]."}
QUESTIONS = [ea.Question("1", "Where do bees live?", ["in hives"]),
             ea.Question("2", "Where do ants live?", ["nests"]),
             ea.Question("3", "Who founded the hive?", [], answerable=False),
             ea.Question("4", "What do wasps build?", [], answerable=False)]


def test_question_files_report_bad_lines_by_number_and_keep_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join([json.dumps({"question": "Where?", "answers": ["here"]}), "{broken",
                               json.dumps({"question": "Why?", "answers": "because"}),
                               json.dumps({"question": "When?", "answerable": "no"}),
                               json.dumps({"answers": ["x"]}),
                               json.dumps({"question": "Who?", "answerable": False, "id": "who"}),
                               json.dumps({"question": "Who again?", "id": "who"})]) + "\n")
    problems: list[str] = []
    questions = ea.load_jsonl(path, problems)
    assert [(q.id, q.question, q.answers, q.answerable) for q in questions] == [
        ("1", "Where?", ["here"], True), ("who", "Who?", [], False)]
    assert [p.split(": ", 1)[1] for p in problems] == [
        "line 2 is not JSON (Expecting property name enclosed in double quotes)",
        "line 5 lacks a string 'question'", "question 2 ('Why?'): 'answers' must be a list of strings",
        "question 3 ('When?'): 'answerable' must be true or false", "question 5: duplicate id 'who'"]


def test_metrics_by_hand() -> None:
    outcomes = ea.ask_all(checked(FakeAnswerer(SCRIPT)), QUESTIONS, None)
    m = ea.score(outcomes)
    assert (m["questions"], m["answerable"], m["unanswerable"], m["sentences"]) == (4, 2, 2, 4)
    # sentences: bees supported; ants mis-cited ([3] is about wasps), so re-cited to [2]; cows unsupported;
    # wasps supported
    assert m["faithfulness"] == 0.75 and m["citation_recall"] == 0.75
    assert m["citation_precision"] == 0.75  # [1], ants' corrected [2] and wasps' [3] support; cows' [2] does not
    assert outcomes[1]["sentences"][0]["citation_corrected"] and outcomes[1]["sentences"][0]["cited_as"] == [3]
    assert m["right_and_cited"] == 1.0  # "in hives" said and in cited [1]; "nests" said and in the corrected [2]
    assert m["exact_match"] == 0.0 and m["f1"] == pytest.approx(round((2 / 3 + 2 / 5) / 2, 4))  # markers are not words
    # short answers: "hives" of "Bees live in hives", "In nests" as it is (it restates nothing)
    assert m["short_exact_match"] == 0.0 and m["short_f1"] == pytest.approx(2 / 3, abs=1e-4)
    said = checked(FakeAnswerer(SCRIPT)).ask("Where do bees live?")
    short = ea.outcome(QUESTIONS[0], replace(said, short="in hives"), 0.5)
    assert (short["em"], short["short_em"], short["short_f1"]) == (0.0, 1.0, 1.0)
    assert ea.score([short])["short_exact_match"] == 1.0 and ea.score([short])["exact_match"] == 0.0
    assert m["abstention"] == 0.5 and m["wrong_abstention"] == 0.0
    assert m["gold_retrieved"] == 1.0  # "in hives" and "nests" are in shown passages
    assert m["total_p50_s"] is not None and m["verify_p99_s"] is not None


def test_an_interrupted_run_resumes_without_redoing_finished_questions(tmp_path: Path) -> None:
    out = tmp_path / "run"
    ea.prepare(out, {"dataset": "d"})
    first = FakeAnswerer(SCRIPT)
    done = 0

    def stop_after_two(n: int) -> None:
        nonlocal done
        done += n
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ea.ask_all(checked(first), QUESTIONS, out, progress=stop_after_two)
    assert first.asked == [q.question for q in QUESTIONS[:2]]
    with (out / ea.OUTCOMES).open("a") as fh:
        fh.write('{"id": "3", "question": "Who fou')  # a crash in the middle of a line
    second = FakeAnswerer(SCRIPT)
    outcomes = ea.ask_all(checked(second), QUESTIONS, out)
    assert second.asked == [q.question for q in QUESTIONS[2:]]
    assert [o["id"] for o in outcomes] == ["1", "2", "3", "4"]
    lines = (out / ea.OUTCOMES).read_text().splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == ["1", "2", "3", "4"]
    with pytest.raises(ValueError, match="holds a run with other settings"):
        ea.prepare(out, {"dataset": "other"})
    ea.prepare(out, {"dataset": "d"})  # the same settings resume


def test_report_files_are_written_and_well_formed(tmp_path: Path) -> None:
    report = ea.evaluate(checked(FakeAnswerer(SCRIPT)), QUESTIONS, None, "Answers: demo")
    report.write(tmp_path)
    saved: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == report.results and saved["title"] == "Answers: demo"
    assert set(saved) == {"evaluation", "title", "config", "results", "created_at"}
    markdown = (tmp_path / "results.md").read_text()
    assert "| faithfulness | 0.75 |" in markdown and "![support](support.png)" in markdown
    for name in ("metrics.png", "support.png", "latency.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list(tmp_path.glob(".*.tmp"))


def test_retrieval_check_finds_passages_holding_a_gold_answer(tmp_path: Path, corpus: Path, fake: Any) -> None:
    from rag import Index

    index = Index(tmp_path / "idx", embedder=fake)
    index.ingest([corpus], progress=False)
    questions = [ea.Question("1", "Skerry Point lighthouse keeper wicks", ["Skerry Point"]),
                 ea.Question("2", "Skerry Point lighthouse", ["no such words anywhere"]),
                 ea.Question("3", "unanswerable", [], answerable=False)]
    found = ea.retrieval(index, questions, ["bm25", "hybrid"], k=3)
    assert set(found) == {"bm25", "hybrid"}
    for mode in found.values():
        assert mode["questions"] == 2 and mode["answer_in_top_3"] == 0.5 and mode["mrr"] == 0.5
        assert mode["latency_p50_ms"] is not None
