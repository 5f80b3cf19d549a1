"""The verifier: checking answers with a fake verifier (fast), the training pairs, the metrics,
and the shipped cross-encoder and `rag verify` for real."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from rag import metrics, models, verify
from rag.answer import Answer
from rag.generate import citations as cites
from rag.generate.prompt import ABSTAIN
from rag.retrieve import Hit
from rag.training import howto
from rag.training import verifier as training
from tests.conftest import rag_env, write_halueval


class KeywordVerifier:
    """Supported iff every word of the claim after the question mark is in the premise."""

    name = "keywords"
    threshold = 0.5

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.calls += pairs
        return [0.9 if all(w in p.lower() for w in h.split("?")[-1].lower().strip(" .").split()) else 0.1
                for p, h in pairs]


class Graded(KeywordVerifier):
    """KeywordVerifier, but a supported claim whose answer names `sure` scores 0.95 and any other 0.7."""

    def __init__(self, sure: str) -> None:
        super().__init__()
        self.sure = sure

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [min(s, 0.95 if self.sure in h.split("?")[-1].lower() else 0.7)
                for s, (_, h) in zip(super().scores(pairs), pairs, strict=True)]


class CodeVerifier(KeywordVerifier):
    """KeywordVerifier, but a claim giving code is supported iff the passage holds that code."""

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        code = [re.search(r"`([^`]+)`", h) for _, h in pairs]
        return [b if c is None else 0.9 if c.group(1).lower() in p.lower() else 0.1
                for (p, _), c, b in zip(pairs, code, super().scores(pairs), strict=True)]


def hit(rank: int, text: str) -> Hit:
    return Hit(rank, rank, f"/docs/{rank}.md", None, 0, len(text), 1.0, "", text)


def answer(text: str, passages: list[str]) -> Answer:
    hits = [hit(n, t) for n, t in enumerate(passages, 1)]
    parsed = cites.parse(text, hits)
    return Answer("Where do bees live?", text, False, None, parsed.sentences, parsed.citations, hits, [], 0,
                  "scripted", 10, {"total_s": 1.0})


PASSAGES = ["bees live in hives", "ants live in nests", "wasps build paper nests"]


def test_each_sentence_is_supported_mis_cited_or_unsupported() -> None:
    checked = verify.check(answer("Bees live in hives [1]. Ants live in nests [3]. Cows fly [2].", PASSAGES),
                           KeywordVerifier())
    assert [s.verdict for s in checked.sentences] == ["supported", "mis-cited", "unsupported"]
    assert [s.supported for s in checked.sentences] == [True, True, False]  # the mis-cited one is re-cited
    ants = checked.sentences[1]
    assert (ants.citations, ants.cited_as, ants.citation_corrected) == ([2], [3], True)
    assert [(c.marker, c.quote) for c in checked.citations] == [(1, "bees live in hives"), (2, "ants live in nests"),
                                                                (2, "ants live in nests")]
    assert [s.best_marker for s in checked.sentences][:2] == [1, 2]
    assert checked.sentences[0].support == 0.9 and checked.sentences[0].citation_support == [0.9]
    assert checked.faithfulness == round(2 / 3, 4)  # a mis-cited sentence is still backed by the passages
    assert "verify_s" in checked.timings and checked.answer.startswith("Bees live")


def test_the_claim_checked_includes_the_question() -> None:
    fake = KeywordVerifier()
    verify.check(answer("In hives [1].", PASSAGES), fake)
    assert fake.calls[0] == (PASSAGES[0], "Where do bees live? In hives.")
    assert len(fake.calls) == len(PASSAGES)  # against every shown passage, to find a better one


def test_abstentions_are_not_checked() -> None:
    abstained = Answer("q", ABSTAIN, True, "model_abstained", [], [], [hit(1, "x")], [], 0, "m", 5, {})
    fake = KeywordVerifier()
    assert verify.check(abstained, fake) is abstained and fake.calls == []


def test_token_overlap_baseline() -> None:
    overlap = verify.OverlapVerifier()
    assert overlap.scores([("Bees live in hives.", "bees hives"), ("Bees live in hives.", "cows hives"),
                           ("x", "the a")]) == [1.0, 0.5, 0.0]


def test_metrics_by_hand() -> None:
    labels = [1, 1, 0, 0]
    assert metrics.balanced_accuracy([True, False, False, False], labels) == 0.75
    assert metrics.balanced_accuracy([True] * 4, labels) == 0.5  # a constant guess, whatever the balance
    assert metrics.roc_auc([0.9, 0.4, 0.5, 0.1], labels) == 0.75  # 3 of the 4 (pos, neg) pairs ordered right
    assert metrics.roc_auc([0.9], [1]) is None
    bins = metrics.calibration([0.05, 0.15, 0.95, 1.0], [0, 1, 1, 1], bins=10)
    assert [b["count"] for b in bins] == [1, 1, 2] and bins[2]["positive_share"] == 1.0
    assert training.best_threshold([0.2, 0.4, 0.6, 0.8], [0, 0, 1, 1]) == 0.5


def test_training_pairs_cover_every_kind_with_the_right_labels(tmp_path: Path) -> None:
    data = write_halueval(tmp_path / "qa.jsonl", 60)
    train, calibration, dev = training.split(data, training.VerifierConfig(dev_rows=20, calibration_rows=10))
    assert (len(train), len(calibration), len(dev)) == (30, 10, 20)
    pairs = training.pairs(train)
    labels = {"right": 1, "hallucinated": 0, "other_passage": 0, "swapped_answer": 0, "copied_sentence": 1,
              "swapped_sentence": 0, "answer_sentence": 1, "swapped_answer_sentence": 0, "negated_sentence": 0,
              "part_sentence": 1, "missing_sentence": 0}  # bounds are either (test below)
    kinds = {p.kind: p.label for p in pairs}
    assert set(labels) - {"part_sentence", "missing_sentence"} <= set(kinds)  # one-sentence, comma-free knowledge
    assert all(labels[kind] == label for kind, label in kinds.items() if kind != "bound_sentence")
    written_out = [p for p in pairs if p.kind == "answer_sentence"]
    assert all(own["right_answer"] in p.hypothesis for p in written_out
               for own in train if own["question"] in p.hypothesis)  # the answer in a whole sentence
    for p in pairs:
        if p.kind.startswith("swapped"):
            assert p.hypothesis.split("?")[-1].strip() not in p.premise  # changed: no longer said by the premise
        if p.kind == "missing_sentence":
            assert p.hypothesis not in p.premise and p.premise in " ".join(r["knowledge"] for r in train)
        if p.kind == "other_passage":
            own = next(r for r in train if r["question"] in p.hypothesis)
            assert p.premise != own["knowledge"]
    with pytest.raises(ValueError, match="need more than"):
        training.split(data, training.VerifierConfig(dev_rows=50, calibration_rows=10))


def test_swaps_change_one_number_or_name_to_something_the_premise_lacks() -> None:
    rng = random.Random(1)
    premise = "The Eiffel Tower in Paris was finished in 1889 by Gustave Eiffel."
    made = [training.swap("It was finished in 1889 by Gustave Eiffel.", premise, ["Berlin", "Rome"], rng)
            for _ in range(40)]
    changed = [m for m in made if m]
    assert len(changed) > 20 and len(set(changed)) > 5
    assert not any(c == "It was finished in 1889 by Gustave Eiffel." or c in premise for c in changed)
    assert training.swap("no names or numbers here", premise, ["Berlin"], rng) is None


def test_statements_are_negated_shortened_and_bounded_with_the_right_labels() -> None:
    assert training.negate("The tower was finished in 1889.") == "The tower was not finished in 1889."
    assert training.negate("It is not here, it was there.") == "It is not here, it was not there."
    assert training.negate("Bees make honey.") is None
    assert training.part("Jaime Meline (born March 2, 1975) is an American hip hop artist.") == \
        "Jaime Meline is an American hip hop artist."
    assert training.part("The circuit is a motor racing track in Bathurst, New South Wales.") == \
        "The circuit is a motor racing track in Bathurst."
    assert training.part("It is short, really.") is None
    rng = random.Random(0)
    for _ in range(60):
        made = training.comparison("The hospital is licensed for 728 beds.", rng)
        assert made is not None
        text, holds = made
        words, bound = re.fullmatch(r"The hospital is licensed for (more than|over|less than|under) (\d+) beds\.",
                                    text).groups()  # type: ignore[union-attr]
        assert holds == ((int(bound) < 728) == (words in ("more than", "over")))
        year = training.comparison("The band was formed in 1961 in Leeds.", rng)
        assert year and re.fullmatch(r"The band was formed (after|before) \d{4} in Leeds\.", year[0])
        after, bound = re.search(r"(after|before) (\d{4})", year[0]).groups()  # type: ignore[union-attr]
        assert year[1] == ((int(bound) < 1961) == (after == "after"))
    for nothing in ("He was born on May 4, 1961.", "It stands at 860 West 7th Street.", "It sold about 40 copies.",
                    "Route 66 is long."):
        assert training.comparison(nothing, rng) is None, nothing


def test_how_to_pairs_bind_each_task_to_the_command_the_page_gives_for_it() -> None:
    made = howto.claims(300, seed=1)
    kinds = {(c.kind, c.label) for c in made}
    assert kinds == {("command", 1), ("platform_command", 1), ("other_command", 0), ("changed_command", 0),
                     ("missing_task", 0), ("other_platform", 0)}
    for c in made:
        command = re.search(r"`([^`]+)`|```bash\n(.+)\n```", c.sentence)
        assert command, c.sentence
        said = command.group(1) or command.group(2)
        assert (said in c.passage) == (c.kind not in {"changed_command"}), (c.kind, said)
        if c.question and c.kind in {"command", "platform_command", "other_command"}:
            asked = c.question.removeprefix("How do I ").split(" with ")[0]
            given_for = _task_before(c.passage, c.passage.index(said))
            assert (given_for == asked) == (c.kind != "other_command"), (c.kind, asked, given_for)
        if c.kind == "missing_task":
            task = c.question.removeprefix("How do I ").split(" with ")[0]
            assert not re.search(rf"\b{task}", c.passage, re.IGNORECASE)
    assert howto.claims(5, seed=2) == howto.claims(5, seed=2)


def _task_before(passage: str, at: int) -> str:
    """The task the page names last before offset `at`: the one the command there is given for."""
    found = [(m.start(), task) for task, _ in howto._TASKS
             for m in re.finditer(rf"\b{task}\b", passage[:at], re.IGNORECASE)]
    return max(found)[1]


def test_table_pairs_are_read_by_row_and_column_and_labelled_by_the_asked_cell() -> None:
    made = training.synthetic(training.VerifierConfig(tables=200, seed=3))
    assert {p.kind for p in made} == {"table_cell", "other_cell", "table_without_answer"}
    for p in made:
        value = p.hypothesis.rsplit(" ", 1)[-1]
        assert value in p.premise and "|---" not in p.premise  # a rule line is never read
        assert p.label == (p.kind == "table_cell")
    cell = next(p for p in made if p.kind == "table_cell")
    wrong = next(p for p in made if p.kind == "other_cell" and p.premise == cell.premise)
    assert cell.hypothesis.split("?")[0] == wrong.hypothesis.split("?")[0]  # the same question


def test_labelled_claims_are_read_whole_and_a_missing_label_names_the_file(tmp_path: Path) -> None:
    from rag.evaluation.verifier import labelled

    made = labelled(Path(__file__).parent.parent / "eval" / "command-claims.jsonl")
    assert len(made) == 22 and sum(p.label for p in made) == 11 and {p.kind for p in made} == {"command-claims"}
    bad = tmp_path / "claims.jsonl"
    bad.write_text('{"premise": "a", "hypothesis": "b", "label": 1}\n{"premise": "a", "hypothesis": "b"}\n')
    with pytest.raises(ValueError, match="claims.jsonl: claim 2 has no label"):
        labelled(bad)


@pytest.mark.parametrize(("question", "sentence", "claimed"), [
    ("How do I list all the packages installed?", "To list all the packages installed, run `python -m pip list`.",
     "run `python -m pip list`"),
    ("How do I create an environment?", "To create an environment, run:\n```bash\npython3 -m venv env\n```",
     "run:\n```bash\npython3 -m venv env\n```"),
])
def test_a_command_is_claimed_whole_even_where_its_words_restate_the_question(question: str, sentence: str,
                                                                               claimed: str) -> None:
    assert verify.answer_part(question, sentence) == claimed


def test_over_long_pairs_are_trimmed_not_refused() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(models.resolve("all-MiniLM-L6-v2")))
    pairs = [training.Pair("short premise", "a very long hallucinated answer " * 100, 0, "hallucinated"),
             training.Pair("a long premise " * 100, "short claim", 1, "right")]
    encoded = training.encode(tokenizer, pairs, 192)
    assert encoded["input_ids"].shape == (2, 192)


@pytest.mark.slow
def test_the_shipped_verifier_orders_clear_cases() -> None:
    checker = verify.CrossEncoderVerifier()
    premise = "The Eiffel Tower was completed in 1889 in Paris. It was designed by the company of Gustave Eiffel."
    good, wrong_year, unrelated = checker.scores([
        (premise, verify.claim("When was the Eiffel Tower completed?", "It was completed in 1889.")),
        (premise, verify.claim("When was the Eiffel Tower completed?", "It was completed in 1925.")),
        (premise, verify.claim("Who wrote Hamlet?", "William Shakespeare wrote Hamlet."))])
    assert good > checker.threshold > max(wrong_year, unrelated)
    short, long = checker.scores([(premise, verify.claim("When was the Eiffel Tower completed?", "1889")),
                                  (premise, verify.claim("When was the Eiffel Tower completed?",
                                                         "The answer is 1889, when it was completed in Paris."))])
    assert min(short, long) > checker.threshold  # the form of a right answer does not decide
    assert min(good, wrong_year, unrelated) >= 0.0 and max(good, wrong_year, unrelated) <= 1.0


@pytest.mark.slow
def test_verify_command_scores_pairs_and_skips_bad_lines(tmp_path: Path) -> None:
    """Claims as `rag ask` makes them (question + answer); plain sentences are the verifier's weak
    side (VitaminC, see its model card)."""
    premise = "Honey bees live in hives made of wax."
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"premise": premise, "hypothesis": "Where do honey bees live? In hives made of wax."})
                     + "\n{oops\n" + json.dumps({"premise": "x"}) + "\n"
                     + json.dumps({"premise": premise, "hypothesis": "Where do honey bees live? In caves."}) + "\n")
    result = subprocess.run([sys.executable, "-m", "rag", "verify", "--pairs", str(pairs), "--json"], cwd=tmp_path,
                            env=rag_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1  # some lines were skipped
    assert "line 2 is not JSON" in result.stderr and "line 3 lacks a string 'hypothesis'" in result.stderr
    good, bad = [json.loads(x) for x in result.stdout.splitlines()]
    assert good["supported"] is True and bad["supported"] is False and good["premise"] == premise
    assert 0.0 <= bad["score"] < good["score"] <= 1.0


@pytest.mark.parametrize(("question", "sentence", "part"), [
    ("What is the daily send limit for verified accounts?", "The daily send limit for verified accounts is $3,500.",
     "$3,500"),
    ("What minimum credit score is required?", "The minimum credit score required is 0.", "0"),
    ("Which module creates virtual environments?", "The module that creates virtual environments is venv.", "venv"),
    ("How do I create a virtual environment?", "To create a virtual environment, run python -m venv env.",
     "run python -m venv env"),
    ("Who founded Rho Bank?", "Rho Bank was founded in 1990 by John Doe.", "1990 by John Doe"),
    ("Where do bees live?", "In hives.", "In hives."),  # restates nothing: a short answer, as it is
    ("Is it free?", "It is.", "It is."),  # adds nothing
    # Where the answer comes from is no claim a passage could support.
    ("What is the daily send limit for verified accounts?",
     "According to the passage, the daily send limit for verified accounts is $3,500.", "$3,500"),
    ("Which file does bash --norc skip?", "Based on the evidence provided in passage [3], bash --norc skips ~/.bashrc.",
     "bashrc"),
    ("Who wrote it?", "According to Jane Doe, John Doe wrote it.", "According to Jane Doe, John Doe"),  # a source
])
def test_a_full_sentence_is_checked_by_what_it_adds_to_its_question(question: str, sentence: str, part: str) -> None:
    """A sentence that restates its question is checked like the short answer the verifier was trained
    on; what it adds (numbers, names) is all still in the claim, where the rules check it."""
    assert verify.answer_part(question, sentence) == part
    assert verify.claim(question, sentence) == f"{question} {part}"


def test_a_plain_sentence_is_cited_to_the_passage_that_supports_it_best() -> None:
    checked = verify.check(answer("Bees live in hives.", PASSAGES), KeywordVerifier())
    (sentence,) = checked.sentences
    assert sentence.citations == [1] and sentence.verdict == "supported" and not sentence.citation_corrected
    assert checked.citations[0].quote
    unsupported = verify.check(answer("Cows fly.", PASSAGES), KeywordVerifier()).sentences[0]
    assert unsupported.citations == [] and unsupported.verdict == "unsupported" and unsupported.best_marker
