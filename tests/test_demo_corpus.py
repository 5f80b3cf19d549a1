"""End to end over the bundled demo corpus with the real embedder: what `make run` does, and answers
from the real reader, generator and verifier over it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag import Index, verify
from rag.pipeline import Pipeline
from rag.reader import Reader
from tests.conftest import REPO

QUERIES = [  # (question, file the answer is in)
    ("How many referral bonuses can I earn per year with a Blue Account?", "doc_checking_accounts_blue_account_010.md"),
    ("How do I create a virtual environment for my project?", "venv.html"),
    ("What does the shopt builtin do?", "bashref.pdf"),
]


@pytest.mark.slow
def test_demo_corpus_builds_answers_and_updates_incrementally(tmp_path: Path, real_embedder: object,
                                                              default_generator: object) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "corpus", corpus)
    index = Index(tmp_path / "idx", embedder=real_embedder)  # type: ignore[arg-type]
    report = index.ingest([corpus], progress=False)
    n_files = sum(1 for p in corpus.rglob("*") if p.suffix in {".md", ".html", ".pdf"})
    assert report.ok and len(report.added) == n_files
    assert report.chunks_total > 2000

    for question, expected in QUERIES:
        hits = index.search(question, k=5)
        assert expected in [Path(h.source).name for h in hits], (question, [h.source for h in hits])
    pdf_hit = next(h for h in index.search("What does the shopt builtin do?", k=5) if h.source.endswith(".pdf"))
    assert pdf_hit.page is not None and pdf_hit.heading
    answers_questions(index, default_generator)

    changed = corpus / "rho-bank" / "doc_checking_accounts_blue_account_010.md"
    old_n = index.snapshot().manifest()[str(changed)].n_chunks
    changed.write_text(changed.read_text() + "\n### Can I pay in seashells?\nNo, seashells are not accepted.\n")
    again = index.ingest([corpus], progress=False)
    n_changed = index.snapshot().manifest()[str(changed)].n_chunks
    assert again.updated == [str(changed)] and again.chunks_embedded == n_changed
    assert again.unchanged == n_files - 1
    assert again.chunks_total == report.chunks_total - old_n + n_changed  # only that file's chunks replaced
    snap = index.snapshot()
    new_chunks = snap.db.execute("SELECT text FROM chunks WHERE path = ?", (str(changed),)).fetchall()
    assert any("seashells are not accepted" in row[0] for row in new_chunks)


def answers_questions(index: Index, generator: object) -> None:
    """The default generator (Qwen2.5-Coder-0.5B) with the shipped reader and verifier: right answers
    written as sentences, cited after writing to the passage that holds them (a table cell by its row
    and column), and an honest abstention that still shows what was found."""
    answers = Pipeline.build(index, generator, reader=Reader(), verifier=verify.load())  # type: ignore[arg-type]
    right = answers.ask("How much can I transfer out per day from a Diamond Elite Savings Account?")
    assert not right.abstained and "$500,000" in right.answer, right
    cited = right.retrieved[right.sentences[0].citations[0] - 1]
    assert "$500,000" in cited.text and "diamond_elite" in cited.source
    assert right.citations[0].quote in cited.text and right.sentences[0].supported and right.short
    # A table row read by its label, written as a sentence (the reader's span would be another row's $50.00).
    fee = answers.ask("What is the monthly maintenance fee of True Blue Business Checking?")
    assert fee.answered_by == "generator" and "$75.00" in fee.answer and len(fee.answer.split()) > 3, fee
    assert "$75.00" in fee.retrieved[fee.sentences[0].citations[0] - 1].text
    # Whoever answers, never the daily column's $3,500 for the monthly limit.
    monthly = answers.ask("What is the monthly send limit for verified Everyone Pay accounts?")
    assert "$35,000" in monthly.answer and "$3,500" not in monthly.answer, monthly
    assert "$35,000" in monthly.retrieved[monthly.sentences[0].citations[0] - 1].text
    unknown = answers.ask("What is the annual fee of the Rho Bank Titanium Rewards Card?")
    assert unknown.abstained and unknown.abstain_reason and unknown.retrieved
    # A how-to question answered with the how: the command, in the step that says what it does, not "venv".
    how = answers.ask("How do I create a virtual environment in Python?")
    assert how.answered_by == "generator" and "python3 -m venv tutorial-env" in how.answer, how
    step = next(s for s in how.sentences if "python3 -m venv" in s.text)
    assert step.supported and "venv.html" in how.retrieved[step.citations[0] - 1].source
