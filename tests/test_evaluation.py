"""Retrieval evaluation: metrics against hand-computed values, both dataset formats, the command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rag.evaluation import retrieval as ev
from tests.conftest import FakeEmbedder, rag_env

PARAGRAPHS = [
    ["Penguins huddle together through the Antarctic winter to keep warm.",
     "Emperor penguins dive deeper than five hundred metres for fish."],
    ["The Danube flows through ten countries before reaching the Black Sea."],
]
QUESTIONS = [["How do penguins keep warm in winter?"], ["How deep do emperor penguins dive?"],
             ["Which sea does the Danube reach?", "How many countries does the Danube flow through?"]]


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    data, q = [], 0
    for a, paragraphs in enumerate(PARAGRAPHS):
        article: dict[str, Any] = {"title": f"A{a}", "paragraphs": []}
        for context in paragraphs:
            qas = [{"id": f"q{q + i}", "question": text, "answers": []} for i, text in enumerate(QUESTIONS[q])]
            article["paragraphs"].append({"context": context, "qas": qas})
            q += 1
        data.append(article)
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": data}))
    return path


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Penguins", "text": "Penguins huddle through the Antarctic winter."},
            {"_id": "d2", "title": "", "text": "The Danube reaches the Black Sea."},
            {"_id": "d3", "title": "Rivers", "text": "The Danube flows through ten countries."}]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": "q1", "text": "penguins antarctic winter"}, {"_id": "q2", "text": "danube river"},
               {"_id": "q3", "text": "a query nobody judged"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t1\n"
                                               "q1\td3\t0\n")
    return folder


def test_metrics_match_hand_computed_values() -> None:
    assert ev.ndcg(["d2", "d1", "d3"], {"d1": 1}) == pytest.approx(1 / math.log2(3))
    assert ev.ndcg(["d3", "d1"], {"d1": 2, "d3": 1}) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ev.ndcg(["x"] * 10 + ["d1"], {"d1": 1}, k=10) == 0.0
    assert ev.recall(["d3", "d1"], {"d1": 2, "d3": 1}, 1) == 0.5
    assert ev.recall(["d2", "d1"], {"d1": 1}, 5) == 1.0
    assert ev.mrr(["d2", "d4", "d1"], {"d1": 1}) == pytest.approx(1 / 3)
    assert ev.mrr(["d2"], {"d1": 1}) == 0.0


def test_squad_loader_keeps_whole_articles(squad_file: Path) -> None:
    full = ev.load_squad(squad_file)
    assert len(full.corpus) == 3 and len(full.queries) == 4
    assert full.qrels["q2"] == {"a1p0": 1} and full.corpus["a1p0"].startswith("The Danube")
    limited = ev.load_squad(squad_file, limit=1)
    assert set(limited.corpus) == {"a0p0", "a0p1"} and set(limited.queries) == {"q0", "q1"}


def test_beir_loader_joins_titles_and_skips_unjudged(beir_folder: Path) -> None:
    data = ev.load_beir(beir_folder)
    assert data.corpus["d1"] == "Penguins\n\nPenguins huddle through the Antarctic winter."
    assert data.corpus["d2"] == "The Danube reaches the Black Sea."
    assert set(data.queries) == {"q1", "q2"} and data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 1}}


def test_halueval_loader_uses_only_the_dev_rows(tmp_path: Path) -> None:
    rows = [{"knowledge": f"fact {i % 3}", "question": f"question {i}?", "right_answer": "a",
             "hallucinated_answer": "b"} for i in range(10)]
    path = tmp_path / "halu.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = ev.load_halueval(path, dev_rows=4)
    assert list(data.queries.values()) == ["question 6?", "question 7?", "question 8?", "question 9?"]
    assert len(data.corpus) == 3  # identical knowledge texts are one document
    assert data.corpus[next(iter(data.qrels["q1"]))] == "fact 1"
    with pytest.raises(ValueError, match="unknown dataset format 'csv'"):
        ev.load("csv", path)


def test_evaluate_reports_every_metric_per_mode(squad_file: Path, tmp_path: Path, fake: FakeEmbedder) -> None:
    dataset = ev.load_squad(squad_file)
    index, by_path = ev.build_index(dataset, tmp_path / "work", embedder=fake, progress=False)
    results = ev.evaluate(index, by_path, dataset, ["bm25", "hybrid"], progress=False)
    assert set(results) == {"bm25", "hybrid"}
    assert set(results["bm25"]) == set(ev.COLUMNS)
    assert results["bm25"]["recall@1"] == 1.0 and results["bm25"]["ndcg@10"] == 1.0
    again, _ = ev.build_index(dataset, tmp_path / "work", embedder=fake, progress=False)  # kept workdir: reused
    assert again.snapshot().path == index.snapshot().path


def test_eval_command_writes_json_and_markdown(beir_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "rag", "eval", "retrieval", "--dataset", str(beir_folder),
                             "--format", "beir", "--mode", "bm25", "dense", "--out", str(out), "--json"],
                            env=rag_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"bm25", "dense"} and printed["bm25"]["recall@20"] == 1.0
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"] == printed and saved["evaluation"] == "retrieval" and saved["config"]["format"] == "beir"
    assert "| bm25 |" in (out / "results.md").read_text()
