"""Generator evaluation: answer metrics against hand-computed values, passages per setting, a scripted run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rag import metrics
from rag.answer import Answer, AnswerConfig, Answerer
from rag.evaluation import generator as eg
from rag.evaluation.retrieval import Dataset, build_index
from rag.generate.citations import parse
from rag.generate.prompt import ABSTAIN
from rag.pipeline import Pipeline
from rag.retrieve import Hit
from tests.conftest import FakeEmbedder, Scripted

PARAGRAPHS = {
    "p0": "The Danube flows through ten countries and reaches the Black Sea.",
    "p1": "The Rhine rises in the Alps and reaches the North Sea at Rotterdam.",
    "p2": "The Volga is the longest river in Europe and ends in the Caspian Sea.",
    "p3": "The Thames flows through London to the North Sea.",
}


def answer(text: str, passages: list[Hit], abstained: bool = False) -> Answer:
    parsed = parse(text, passages)
    return Answer("q", text, abstained, "model_abstained" if abstained else None, parsed.sentences,
                  parsed.citations, passages, [], 0, "m", 0, {"first_token_s": 1.0, "total_s": 2.0})


def hit(n: int, text: str) -> Hit:
    return Hit(n, n, f"/d/{n}.txt", None, 0, len(text), 0.0, "", text)


def test_squad_normalisation_exact_match_and_f1() -> None:
    assert metrics.normalize("The  Black-Sea!") == "blacksea" and metrics.normalize("an Apple a day") == "apple day"
    assert metrics.exact("the Black Sea.", "Black Sea") == 1.0 and metrics.exact("Black", "Black Sea") == 0.0
    assert metrics.f1("the Black Sea coast", "Black Sea") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert metrics.f1("Caspian", "Black Sea") == 0.0


def test_grounded_needs_the_answer_terms_in_a_cited_passage() -> None:
    shown = [hit(1, PARAGRAPHS["p0"]), hit(2, PARAGRAPHS["p1"])]
    assert eg.grounded(answer("It reaches the Black Sea [1].", shown))
    assert not eg.grounded(answer("It reaches the Black Sea [2].", shown))
    assert not eg.grounded(answer("It reaches the Black Sea.", shown))  # cites nothing
    assert eg.grounded(answer("It is [2].", shown))  # no content terms to check
    asked = replace(answer("The Danube ends its long journey in the Black Sea [1].", shown),
                    question="Where does the Danube end its long journey?")
    assert eg.grounded(asked)  # the question's words, restated, need not be in the passage
    assert not eg.grounded(replace(asked, question="Where does it end?"))


def test_scores_by_hand() -> None:
    shown = [hit(1, PARAGRAPHS["p0"]), hit(2, PARAGRAPHS["p1"])]

    def outcome(text: str, answerable: bool, gold: int | None = 1, abstained: bool = False) -> eg.Outcome:
        item = eg.Item("q", "Where does the Danube end?", ["Black Sea"], "p0", answerable)
        return eg.Outcome(item, "gold", answer(text, shown, abstained), gold)

    outcomes = [outcome("The Black Sea [1].", True),  # right, cites gold, grounded
                outcome("The Black Sea [2].", True),  # right, cites a distractor, not grounded
                outcome(ABSTAIN, True, abstained=True),  # wrong abstention
                outcome(ABSTAIN, False, None, abstained=True),  # right abstention
                outcome("The North Sea [2].", False, None)]  # made up: answered an unanswerable one
    scores = eg.score(outcomes)
    assert (scores["answerable"], scores["unanswerable"]) == (3, 2)
    assert scores["exact_match"] == pytest.approx(2 / 3, abs=1e-4) and scores["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert scores["short_exact_match"] == scores["exact_match"]  # no short answers: the answers' text is scored
    long = outcome("It flows for a long way and ends in the Black Sea [1].", True)
    short = eg.Outcome(long.item, "gold", replace(long.answer, short="the Black Sea"), 1)
    assert eg.score([long])["exact_match"] == 0.0 and eg.score([long])["short_exact_match"] == 0.0
    assert eg.score([short])["short_exact_match"] == 1.0 and eg.score([short])["short_f1"] == 1.0
    assert eg.score([short])["f1"] == eg.score([long])["f1"] == pytest.approx(1 / 3, abs=1e-4)  # the old one stays
    assert eg.score([long])["answer_recall"] == 1.0 and scores["answer_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert eg.score([outcome("Not the Black Seas [1].", True)])["answer_recall"] == 0.0  # whole words only
    assert scores["wrong_abstention"] == pytest.approx(1 / 3, abs=1e-4) and scores["abstention"] == 0.5
    assert scores["citation_accuracy"] == 0.5 and scores["uncited_answers"] == 0.0
    assert scores["hallucination"] == pytest.approx(2 / 4)  # (1 unanswerable answered + 1 ungrounded) / (2 + 2)


@pytest.fixture
def setup(tmp_path: Path, fake: FakeEmbedder) -> tuple[Dataset, eg.Passages]:
    dataset = Dataset("rivers", dict(PARAGRAPHS), {"q1": "Which sea does the Danube reach?"}, {"q1": {"p0": 1}},
                      {"q1": ["Black Sea"]})
    index, by_path = build_index(dataset, tmp_path, embedder=fake, progress=False)
    return dataset, eg.Passages(dataset, index, by_path, k=3)


def test_gold_setting_shows_the_gold_among_distractors_or_nothing_that_answers(setup: tuple) -> None:
    _, passages = setup
    answerable = eg.Item("q1", "Which sea does the Danube reach?", ["Black Sea"], "p0", True)
    hits = passages.gold(answerable)
    assert len(hits) == 3 and sum(passages.is_gold(h, answerable) for h in hits) == 1
    assert [h.rank for h in hits] == [1, 2, 3] and passages.gold(answerable) == hits  # seeded shuffle
    unanswerable = eg.Item("q1", answerable.question, ["North Sea"], "p0", False)
    texts = [h.text for h in passages.gold(unanswerable)]
    assert texts == [PARAGRAPHS["p2"]]  # gold gone, and so is every paragraph naming the North Sea
    assert not any(passages.is_gold(h, unanswerable) for h in passages.retrieved(unanswerable))


def test_a_scripted_model_is_scored_in_both_settings(setup: tuple) -> None:
    dataset, passages = setup
    todo = eg.items(dataset, unanswerable_share=0.0)
    systems = {"scripted": Pipeline(Answerer(passages.index, Scripted("The Black Sea [1]."), AnswerConfig(k=3)))}
    results, rows = eg.evaluate(systems, passages, todo, ["gold", "retrieved"])
    assert set(results["scripted"]) == {"gold", "retrieved"} and len(rows) == 2
    gold = results["scripted"]["gold"]
    assert gold["exact_match"] == 1.0 and gold["gold_shown"] == 1.0 and gold["answerable"] == 1
    assert rows[0]["answer"] == "The Black Sea [1]." and rows[0]["cited"] == [1]
    assert "| scripted | gold |" in eg.markdown_table(results)


def test_questions_are_a_seeded_sample_in_dataset_order() -> None:
    dataset = Dataset("d", {"p0": "x"}, {f"q{i}": f"Question {i}?" for i in range(50)}, {f"q{i}": {"p0": 1}
                                                                                           for i in range(50)})
    some = eg.items(dataset, 0.5, sample=10)
    assert len(some) == 10 and some == eg.items(dataset, 0.5, sample=10)
    assert [i.qid for i in some] == sorted((i.qid for i in some), key=lambda q: int(q[1:]))
    assert 0 < sum(i.answerable for i in eg.items(dataset, 0.5)) < 50


@pytest.mark.slow
def test_run_takes_a_config_and_writes_the_common_report(tmp_path: Path) -> None:
    """`rag eval generator` as library code: the real reader alone over a tiny SQuAD file."""
    import json

    squad = {"data": [{"title": "Rivers", "paragraphs": [
        {"context": text, "qas": [{"id": key, "question": f"Where does the river of {key} end?",
                                   "answers": [{"text": text.split()[-2], "answer_start": 0}]}]}
        for key, text in PARAGRAPHS.items()]}]}
    (tmp_path / "squad.json").write_text(json.dumps(squad))
    config = eg.GeneratorEval(tmp_path / "squad.json", systems=("reader",), settings=("gold",), sample=None,
                              unanswerable=0.0, k=3, cache=tmp_path / "cache")
    report = eg.run(config)
    assert report.evaluation == "generator" and set(report.results) == {"reader"}
    assert report.results["reader"]["gold"]["answerable"] == 4 and len(report.outcomes or []) == 4
    report.write(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["config"]["systems"] == ["reader"] and saved["results"] == report.results
    assert "| reader | gold |" in (tmp_path / "out" / "results.md").read_text()
