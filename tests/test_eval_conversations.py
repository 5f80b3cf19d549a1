"""`rag eval answers --format conversation`: follow-up files, each follow-up asked with its
history beside its standalone question, and the comparison's metrics by hand."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from rag.conversation import USER, Turn
from rag.evaluation import answers as ea
from rag.evaluation.conversations import STANDALONE
from rag.generate.prompt import ABSTAIN
from rag.pipeline import Pipeline
from tests.test_eval_answers import FakeAnswerer
from tests.test_verify import KeywordVerifier

BEES = [{"role": "user", "content": "Where do bees live?"}, {"role": "assistant", "content": "In hives [1]."}]
LINES = [
    {"id": "ants", "history": BEES, "question": "And ants?", "standalone": "Where do ants live?", "answers": ["nests"]},
    {"id": "wasps", "history": BEES, "question": "And wasps?", "standalone": "What do wasps build?",
     "answers": ["paper nests"]},
    {"id": "founder", "history": BEES, "question": "Who founded it?", "standalone": "Who founded the hive?",
     "answerable": False},
]


class Table:
    """Rewrites each follow-up by a fixed table (a follow-up not in it stays as it is)."""

    name = "table"

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        assert history and history[0].role == USER
        return self.table.get(question, question)


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_each_follow_up_comes_with_its_standalone_question_and_bad_lines_are_named(tmp_path: Path) -> None:
    bad = [{"question": "And?", "standalone": "Where?", "history": []},
           {"question": "And?", "standalone": "Where?", "history": [{"role": "system", "content": "x"}]},
           {"question": "And?", "history": BEES},
           {"question": "And?", "standalone": "Where?", "history": [{"role": "assistant", "content": "Hi."}]}]
    problems: list[str] = []
    questions = ea.load_conversations(write(tmp_path / "c.jsonl", [LINES[0], *bad, LINES[2]]), problems)
    assert [(q.id, q.question, len(q.history), q.answerable) for q in questions] == [
        ("ants", "And ants?", 2, True), ("ants" + STANDALONE, "Where do ants live?", 0, True),
        ("founder", "Who founded it?", 2, False), ("founder" + STANDALONE, "Who founded the hive?", 0, False)]
    assert questions[0].history[0] == Turn(USER, "Where do bees live?")
    assert [p.split(": ", 1)[1] for p in problems] == [
        "line 4 lacks a string 'standalone'",
        "question 2 ('And?'): 'history' must be a non-empty list of turns",
        "question 3 ('And?'): 'history' turn 1 must be {\"role\": \"user\" or \"assistant\", \"content\": a string}",
        "question 4 ('And?'): 'history' holds no user turn"]


def test_follow_ups_are_scored_beside_their_standalone_questions(tmp_path: Path) -> None:
    script = {"Where do ants live?": "Ants live in nests [3].", "What do wasps build?": "Wasps build paper nests [3].",
              "Who founded the hive?": ABSTAIN, "And wasps?": ABSTAIN}
    answerer = FakeAnswerer(script)
    condenser = Table({"And ants?": "Where do ants live?", "Who founded it?": "Who founded the hive?"})
    pipeline = Pipeline(answerer, KeywordVerifier(), condenser=condenser)  # type: ignore[arg-type]
    questions = ea.load_conversations(write(tmp_path / "c.jsonl", LINES), [])
    report = ea.evaluate(pipeline, questions, None, "Follow-ups", scorer=ea.score_conversations)
    m = report.results
    assert answerer.asked == ["Where do ants live?", "Where do ants live?", "And wasps?", "What do wasps build?",
                              "Who founded the hive?", "Who founded the hive?"]
    assert (m["questions"], m["answerable"], m["unanswerable"]) == (3, 2, 1)  # the follow-ups alone
    assert m["right_and_cited"] == 0.5 and m["standalone_right_and_cited"] == 1.0  # "And wasps?" was not rewritten
    assert m["right_and_cited_ratio"] == 0.5 and m["rewritten"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["abstention"] == 1.0 and m["standalone_abstention"] == 1.0
    assert m["condense_p50_s"] is not None and "| right_and_cited_ratio | 0.5 |" in report.table
    outcomes = ea.ask_all(pipeline, questions[:2], None)
    assert outcomes[0]["question"] == "And ants?" and outcomes[0]["answered_as"] == "Where do ants live?"
    assert outcomes[1]["answered_as"] == outcomes[1]["question"] == "Where do ants live?"
