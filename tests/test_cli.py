"""The `rag` command in real subprocesses with the real packaged embedder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag import Index
from rag.cli.render import show_answer
from rag.generate.prompt import ABSTAIN
from rag.store import write_lock
from tests.conftest import BROKEN, FIXTURES, GOOD, rag_env
from tests.test_pipeline import QUESTION, pipeline, spanned

ROOT = Path(__file__).resolve().parent.parent


def rag(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=cwd, env=rag_env(), input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A folder with a corpus of good and broken files, ingested once through the CLI."""
    work = tmp_path_factory.mktemp("cli")
    (work / "docs").mkdir()
    for name in [*GOOD, *BROKEN]:
        shutil.copy(FIXTURES / name, work / "docs" / name)
    return work, rag("ingest", "docs", "--index", "idx", "--json", cwd=work)


def test_ingest_json_reports_every_file_and_fails_on_bad_ones(built: tuple) -> None:
    _, result = built
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"added", "updated", "removed", "unchanged", "failed", "chunks_total",
                           "chunks_embedded", "seconds"}
    assert sorted(report["added"]) == sorted(f"docs/{n}" for n in GOOD)
    assert {f["path"] for f in report["failed"]} == {f"docs/{n}" for n in BROKEN}
    assert report["chunks_total"] == report["chunks_embedded"] > 0


def test_search_json_finds_the_right_passage(built: tuple) -> None:
    work, _ = built
    result = rag("search", "How many bees live in a colony in summer?", "--index", "idx", "-k", "3", "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert set(hits[0]) >= {"rank", "chunk_id", "source", "page", "start", "end", "score", "text"}
    assert hits[0]["source"] == "docs/sample.html" and "sixty thousand" in hits[0]["text"]
    pdf = rag("search", "what is the Bourne-Again shell", "--index", "idx", "-k", "1", "--json", cwd=work)
    top = json.loads(pdf.stdout)[0]
    assert top["source"] == "docs/sample.pdf" and top["page"] == 3


def test_search_modes_report_why_a_passage_was_chosen(built: tuple) -> None:
    work, _ = built
    bm25 = json.loads(rag("search", "vulcanising", "--index", "idx", "--mode", "bm25", "--json", cwd=work).stdout)
    assert bm25[0]["source"] == "docs/sample.rst" and bm25[0]["bm25_rank"] == 1 and bm25[0]["dense_rank"] is None
    text = rag("search", "vulcanising", "--index", "idx", "-k", "1", cwd=work).stdout
    assert "docs/sample.rst" in text and "bm25 #1" in text
    bad = rag("search", "x", "--index", "idx", "--mode", "fuzzy", cwd=work)
    assert bad.returncode == 2 and "invalid choice: 'fuzzy'" in bad.stderr


@pytest.mark.slow  # two CLI processes load a trained cross-encoder: 20 s
def test_search_rerank_reports_ranks_before_and_after(built: tuple, tiny_reranker: Path) -> None:
    work, _ = built
    args = ("search", "vulcanising solution", "--index", "idx", "-k", "3", "--rerank", "--reranker", str(tiny_reranker))
    hits = json.loads(rag(*args, "--json", cwd=work).stdout)
    assert len(hits) == 3 and all(h["rerank_score"] is not None and h["first_rank"] for h in hits)
    assert hits[0]["score"] == hits[0]["rerank_score"]
    text = rag(*args, cwd=work)
    assert text.returncode == 0 and "before rerank #" in text.stdout
    assert "Converting" not in text.stderr and "LOAD REPORT" not in text.stderr  # loading is quiet
    missing = rag("search", "x", "--index", "idx", "--rerank", "--reranker", "no-such-reranker", cwd=work)
    assert missing.returncode == 2 and "no-such-reranker" in missing.stderr


def test_info_json_describes_the_index(built: tuple) -> None:
    work, _ = built
    info = json.loads(rag("info", "--index", "idx", "--json", cwd=work).stdout)
    assert info["files"] == len(GOOD) and info["embedder"] == "all-MiniLM-L6-v2" and info["dim"] == 384
    assert info["index_type"] == "flat-ip" and info["size_bytes"] > 0 and len(info["failed"]) == len(BROKEN)


def test_second_run_is_a_no_op_and_text_summary_lists_failures(built: tuple) -> None:
    work, _ = built
    result = rag("ingest", "docs", "--index", "idx", cwd=work)
    assert result.returncode == 1
    assert f"0 added, 0 updated, 0 removed, {len(GOOD)} unchanged, {len(BROKEN)} failed" in result.stdout
    assert "FAILED docs/encrypted.pdf: encrypted PDF: a password is required" in result.stderr


def test_interactive_search_reads_queries_until_empty_line(built: tuple) -> None:
    work, _ = built
    result = rag("search", "--index", "idx", "-k", "1", cwd=work, stdin="vulcanising solution for patches\n\n")
    assert result.returncode == 0 and "docs/sample.rst" in result.stdout


def test_concurrent_ingest_is_refused_with_the_holder_named(built: tuple) -> None:
    work, _ = built
    with write_lock(work / "idx"):
        result = rag("ingest", "docs", "--index", "idx", cwd=work)
    assert result.returncode == 2
    assert f"is being written by pid {os.getpid()}" in result.stderr and "--wait" in result.stderr


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    missing = rag("search", "anything", "--index", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2 and "no index at nowhere" in missing.stderr and "Traceback" not in missing.stderr
    bad_model = rag("ingest", str(FIXTURES / "sample.txt"), "--index", "x", "--embedder", "nope/none", cwd=tmp_path)
    assert bad_model.returncode == 2 and "'nope/none'" in bad_model.stderr and "Traceback" not in bad_model.stderr


@pytest.mark.slow
def test_ask_json_with_the_real_default_generator(built: tuple) -> None:
    """The packaged default generator (Qwen2.5-Coder-0.5B, converted from GGUF on first use) end to end:
    the structure, a cited answer or the abstention, citations inside their passages."""
    work, _ = built
    result = rag("ask", "How many bees live in a colony in summer?", "--index", "idx", "-k", "3",
                 "--max-new-tokens", "40", "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) >= {"answer", "abstained", "abstain_reason", "sentences", "citations", "retrieved", "model",
                           "timings"}
    assert answer["model"] == "Qwen2.5-Coder-0.5B-Instruct" and answer["answer"]
    assert answer["citations"] or answer["abstained"], answer["answer"]
    assert {"retrieve_s", "read_s", "first_token_s", "total_s"} <= set(answer["timings"])
    assert answer["evidence"] and answer["evidence"][0]["text"]
    assert answer["answered_by"] in ("generator", "reader", None)
    assert (answer["short"] is None) == answer["abstained"] and (answer["short"] or "") in answer["answer"]
    for sentence in answer["sentences"]:  # checked by the shipped verifier
        assert 0 <= sentence["support"] <= 1 and sentence["verdict"] in ("supported", "mis-cited", "unsupported")
        assert sentence["supported"] == (sentence["verdict"] != "unsupported")
        assert sentence["citation_corrected"] == (sentence["cited_as"] is not None)
    assert (answer["faithfulness"] is None) == (not answer["sentences"])
    assert answer["retrieved"][0]["source"] == "docs/sample.html" and len(answer["retrieved"]) <= 3
    shown = {h["chunk_id"]: h for h in answer["retrieved"]}
    for citation in answer["citations"]:
        passage = shown[citation["chunk_id"]]
        assert passage["start"] <= citation["start"] < citation["end"] <= passage["end"]
    bare = rag("ask", "How many bees live in a colony in summer?", "--index", "idx", "--generator",
               "SmolLM2-135M-Instruct", "--no-adapter", "--no-reader", "--max-new-tokens", "8", "--no-verify", "--json",
               cwd=work)
    assert bare.returncode == 0 and json.loads(bare.stdout)["model"] == "SmolLM2-135M-Instruct"
    assert json.loads(bare.stdout)["faithfulness"] is None and "verify_s" not in json.loads(bare.stdout)["timings"]
    assert json.loads(bare.stdout)["evidence"] == []
    extractive = json.loads(rag("ask", "How many bees live in a colony in summer?", "--index", "idx", "--extractive",
                                "--json", cwd=work).stdout)
    assert extractive["model"] == "reader-minilm" and extractive["answered_by"] in ("reader", None)
    assert extractive["abstained"] or extractive["citations"][0]["quote"]
    strict = json.loads(rag("ask", "How many bees live in a colony in summer?", "--index", "idx", "--strict",
                            "--max-new-tokens", "40", "--json", cwd=work).stdout)
    assert all(s["supported"] for s in strict["sentences"])
    assert strict["sentences"] or strict["abstained"]
    empty = rag("ask", "  ", "--index", "idx", cwd=work)
    assert empty.returncode == 2 and "question is empty" in empty.stderr
    missing = rag("ask", "why?", "--index", "nowhere", cwd=work)
    assert missing.returncode == 2 and "no index at nowhere" in missing.stderr


def test_ask_prints_only_the_final_answer_then_the_replaced_draft_as_a_labelled_note(
        indexed: Index, capsys: pytest.CaptureFixture[str]) -> None:
    """A refusal replaced by the reader's span: the span is what streams, the refusal only in the note."""
    show_answer(pipeline(indexed, ABSTAIN).stream(QUESTION), as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == spanned(indexed)
    note = f'the generator\'s draft, not the answer: "{ABSTAIN}")'
    assert lines[1] == f"  (the reader's answer: its span's sentence, cited to its passage; {note}"
    assert sum(ABSTAIN in line for line in lines) == 1
    show_answer(pipeline(indexed, "In 1901 [1].", margin=1.0).stream(QUESTION), as_json=False)  # an abstention
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ABSTAIN and lines[1].startswith("  (abstained, unsupported_answer:")
    assert lines[1].endswith('the generator\'s draft, not the answer: "In 1901 [1].")')


@pytest.mark.slow
def test_eval_answers_writes_a_report_and_resumes(built: tuple) -> None:
    """The real pipeline (retrieve, generate with the shipped adapter, verify) over a JSON-lines question set."""
    work, _ = built
    questions = work / "questions.jsonl"
    questions.write_text(json.dumps({"question": "How many bees live in a colony in summer?", "id": "bees"}) + "\n"
                         + "not json\n"
                         + json.dumps({"question": "What is the capital of Peru?", "answerable": False}) + "\n")
    args = ("eval", "answers", "--dataset", "questions.jsonl", "--format", "jsonl", "--index", "idx", "--out", "report",
            "--json")
    result = rag(*args, cwd=work)
    assert result.returncode == 1, result.stderr  # a line was skipped
    assert "questions.jsonl: line 2 is not JSON" in result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["questions"] == 2 and metrics["answerable"] == 1 and metrics["unanswerable"] == 1
    assert metrics["total_p50_s"] > 0 and metrics["gold_retrieved"] is None  # no gold answers given
    report = work / "report"
    assert {p.name for p in report.iterdir()} >= {"outcomes.jsonl", "run.json", "results.json", "results.md",
                                                  "metrics.png", "support.png", "latency.png"}
    lines = (report / "outcomes.jsonl").read_text().splitlines()
    again = rag(*args, cwd=work)  # every question is done: nothing is asked again
    assert json.loads(again.stdout) == metrics and (report / "outcomes.jsonl").read_text().splitlines() == lines
    other = rag(*args[:-1], "-k", "2", cwd=work)
    assert other.returncode == 2 and "holds a run with other settings" in other.stderr


@pytest.mark.slow
def test_eval_verifier_compares_with_both_baselines(tmp_path: Path) -> None:
    from tests.conftest import write_halueval

    write_halueval(tmp_path / "qa.jsonl", 1530)
    examples = [{"input": "Bees: Bees live in hives.\nClaim: Bees live in hives.", "target_scores": {"True": 1}},
                {"input": "Bees: Bees live in hives.\nClaim: Bees live in caves.", "target_scores": {"False": 1}},
                {"input": "Ants: Ants live in nests.\nClaim: Ants sing.", "target_scores": {"Neither": 1}}]
    (tmp_path / "vitaminc.json").write_text(json.dumps({"examples": examples}))
    shutil.copy(ROOT / "eval" / "command-claims.jsonl", tmp_path)
    result = rag("eval", "verifier", "--halueval", "qa.jsonl", "--vitaminc", "vitaminc.json", "--limit", "6",
                 "--calibration-limit", "6", "--claims", "command-claims.jsonl", "--out", "out", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert set(results) == {"verifier-minilm", "verifier-minilm (model only)", "token-overlap", "judge"}
    for by_data in results.values():
        assert by_data["halueval-dev"]["pairs"] == 6 and by_data["vitaminc"]["pairs"] == 3
        assert by_data["command-claims"]["pairs"] == 22 and by_data["command-claims"]["supported_share"] == 0.5
        assert by_data["halueval-dev-sentences"]["pairs"] == 6
        assert 0 <= by_data["vitaminc"]["balanced_accuracy"] <= 1
    assert (tmp_path / "out" / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert "| verifier-minilm | halueval-dev | 6 |" in (tmp_path / "out" / "results.md").read_text()
