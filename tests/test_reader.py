"""The extractive reader: span decoding on hand-made logits, training examples and targets, a tiny
training run that resumes from its checkpoint, and the shipped weights on a real passage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import models, reader
from rag.reader import Reader, Window, best_spans, decode
from rag.training import loop, tables
from rag.training import reader as training

NONE = None
# [CLS] question [SEP] passage tokens [SEP]: offsets only on the passage's four tokens
OFFSETS = [NONE, NONE, NONE, (0, 4), (5, 9), (10, 14), (15, 19), NONE]
PASSAGE = "aaaa bbbb cccc dddd"


def test_spans_start_before_they_end_stay_in_the_passage_and_are_not_too_long() -> None:
    start = [0.0, 9.0, 0.0, 1.0, 5.0, 0.0, 0.0, 0.0]  # the question token (1) scores highest, never a span
    end = [0.0, 9.0, 0.0, 4.0, 0.0, 1.0, 3.0, 9.0]  # the final [SEP] (7) too
    found = best_spans(start, end, OFFSETS, max_tokens=10, top=3)
    assert found[0] == (4, 6, 8.0)  # "bbbb cccc dddd": best start 4, best end at or after it 6
    assert all(i <= j and OFFSETS[i] and OFFSETS[j] for i, j, _ in found)
    assert (3, 3, 5.0) in best_spans(start, end, OFFSETS, max_tokens=10, top=6)  # end 3 pairs with start 3 only
    assert best_spans(start, end, OFFSETS, max_tokens=2, top=1)[0] == (4, 5, 6.0)  # at most 2 tokens


def test_no_answer_wins_when_cls_beats_every_span_and_passages_compare_by_margin() -> None:
    windows = [Window(0, OFFSETS), Window(1, OFFSETS)]
    weak = [6.0, 0, 0, 2.0, 0, 0, 0, 0], [6.0, 0, 0, 2.0, 0, 0, 0, 0]  # [CLS] 12 vs best span 4
    strong = [0.0, 0, 0, 0, 3.0, 0, 0, 0], [0.0, 0, 0, 0, 3.0, 0, 0, 0]  # span 6 vs [CLS] 0
    spans = decode(windows, [weak[0], strong[0]], [weak[1], strong[1]], [PASSAGE, "eeee ffff gggg hhhh"], 30, 20)
    assert spans[0].passage == 1 and spans[0].text == "ffff" and spans[0].margin == 6.0
    first = next(s for s in spans if s.passage == 0)
    assert first.text == "aaaa" and first.margin == -8.0  # passage 0's best span loses to its no-answer score


def test_spans_never_cross_a_line_break_or_a_table_cell() -> None:
    table = "| New | $750 |\n| Verified | $3,500 |"
    offsets = [NONE, NONE, (2, 5), (8, 12), (17, 25), (28, 34), NONE]
    start = [0.0, 0, 0, 9.0, 0, 1.0, 0]  # "$750" starts best, and would run on to "$3,500"
    end = [0.0, 0, 0, 0, 0, 9.0, 0]
    spans = decode([Window(0, offsets)], [start], [end], [table], 30, 3)
    assert spans and all("\n" not in s.text and "|" not in s.text for s in spans)
    assert {s.text for s in spans} >= {"$750", "$3,500"}
    heading = "## Fees"
    only_markup = decode([Window(0, [NONE, (0, 2), (3, 7), NONE])], [[0.0, 9.0, 1.0, 0]], [[0.0, 9.0, 1.0, 0]],
                         [heading], 30, 3)
    assert only_markup and "##" not in [s.text for s in only_markup]  # the best-scoring span, "##", is not one
    numbered = "Intro\n## 4.2. for Statements\n3) Run it\nVersion 4.2 is out.\n2019 was a year"
    offsets = [NONE, (9, 13), (9, 12), (29, 30), (47, 50), (59, 63), NONE]  # "4.2.", "4.2", "3", "4.2", "2019"
    scores = [0.0, 9.0, 9.0, 9.0, 8.0, 7.0, 0]
    spans = decode([Window(0, offsets)], [scores], [scores], [numbered], 30, 5)
    # A heading's or item's number is no value; the text's numbers are, first on a line or not.
    assert [s.text for s in spans] == ["4.2", "2019"] and spans[0].start == 47


def test_overlapping_spans_of_one_passage_are_listed_once() -> None:
    start = [0.0, 0, 0, 3.0, 2.9, 0, 0, 0]
    end = [0.0, 0, 0, 0, 3.0, 0, 0, 0]
    spans = decode([Window(0, OFFSETS)], [start], [end], [PASSAGE], 30, 3)
    assert [s.text for s in spans][:2] == ["aaaa bbbb", "cccc"] or spans[0].text == "aaaa bbbb"
    assert all(not (a.start < b.end and b.start < a.end) for n, a in enumerate(spans) for b in spans[n + 1:])


ROWS = [{"knowledge": f"Town {n} lies on the river Ve{chr(97 + n)}x. Its mayor is called Ann{n}.",
         "question": f"Which river does Town {n} lie on?", "right_answer": f"ve{chr(97 + n)}x"} for n in range(24)]


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_examples_find_the_answer_ignoring_case_and_take_distractors_without_it() -> None:
    answer = {r["question"]: r["right_answer"] for r in ROWS}
    items = training.examples(ROWS, negatives=1)
    positives = [e for e in items if e.start >= 0]
    assert len(positives) == len(ROWS)
    assert all(e.passage[e.start:e.end] == answer[e.question].capitalize() for e in positives)
    negatives = [e for e in items if e.start < 0]
    assert len(negatives) == len(ROWS)
    assert all(answer[e.question] not in e.passage.lower() for e in negatives)


def test_targets_point_at_the_answer_tokens_or_at_cls_when_a_window_cuts_it() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(models.resolve("all-MiniLM-L6-v2")))
    text = "filler " * 40 + "The lamp was lit by Ada Lovelace in the storm."
    at = text.index("Ada Lovelace")
    example = training.Example("Who lit the lamp?", text, at, at + len("Ada Lovelace"))
    _, windows = reader.encode(tokenizer, [example.question], [example.passage], max_length=40, stride=10)
    starts, ends = training.targets(windows, [(example.start, example.end)])
    holding = [n for n, s in enumerate(starts) if s]
    assert holding, "some window holds the whole answer"
    for n in holding:
        first, last = windows[n].offsets[starts[n]], windows[n].offsets[ends[n]]
        assert first and last and text[first[0]:last[1]] == "Ada Lovelace"
    assert 0 in starts  # the windows before the answer point at [CLS]


def test_synthetic_table_questions_point_at_the_asked_cell_or_at_no_answer() -> None:
    asked = tables.questions(300, seed=3)
    assert asked == tables.questions(300, seed=3)  # repeatable
    answerable = [q for q in asked if q.start >= 0]
    assert 0.55 < len(answerable) / len(asked) < 0.8
    for q in answerable:
        line = q.passage[q.passage.rfind("\n", 0, q.start) + 1: q.passage.find("\n", q.end)]
        assert line.startswith("| ") and f"| {q.passage[q.start:q.end]} |" in line
        text, (start, end) = training.read_as_asked(training.Example(q.question, q.passage, q.start, q.end, q.context))
        assert text.startswith(q.context) and text[start:end] == q.passage[q.start:q.end]
    other_product = [q for q in asked if q.start < 0 and q.context.split(" > ")[0] not in q.question]
    assert other_product, "pages about another product are negatives"


def test_a_tiny_training_run_saves_a_loadable_reader_and_resumes(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    config = training.ReaderConfig(dev_rows=4, batch_size=8, max_length=64, stride=16, threads=1)
    out = tmp_path / "reader"
    record = training.train(data, out, config)
    assert record["positives"] == 20 and record["negatives"] == 20 and record["steps"] == 5
    tuned = training.train(data, tmp_path / "tuned", training.ReaderConfig(
        dev_rows=4, batch_size=8, max_length=64, stride=16, threads=1, tables=8, init=str(out)))
    assert tuned["steps"] == 6 and tuned["tables"] == 8  # 40 rows' examples + 8 tables, from the first run
    assert not (out / "checkpoints" / loop.CHECKPOINT).exists()  # removed once the run is done
    spans = Reader(out).read("Which river does Town 3 lie on?", [ROWS[3]["knowledge"], ROWS[5]["knowledge"]])
    assert spans and all(s.text == ROWS[3 if s.passage == 0 else 5]["knowledge"][s.start:s.end] for s in spans)


def test_loop_resumes_from_a_checkpoint_with_the_same_result(tmp_path: Path) -> None:
    import torch

    def run(stop_at: int | None, folder: Path) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        data = [torch.tensor([float(i), 1.0, -float(i)]) for i in range(12)]
        calls = 0

        def loss(batch: list[torch.Tensor]) -> torch.Tensor:
            nonlocal calls
            calls += 1
            if stop_at is not None and calls > stop_at:
                raise KeyboardInterrupt
            return model(torch.stack(batch)).pow(2).mean()

        loop.fit(model, data, loss, epochs=2, batch_size=3, learning_rate=0.01, warmup=0.0, seed=1, first_loss=1.0,
                 checkpoints=folder, every=2)
        return model.weight.detach().clone()

    whole = run(None, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(5, tmp_path / "b")  # stopped after step 5: the checkpoint of step 4 is there
    assert (tmp_path / "b" / loop.CHECKPOINT).is_file()
    assert torch.allclose(run(None, tmp_path / "b"), whole)


@pytest.mark.slow
def test_the_shipped_reader_finds_the_answer_in_a_real_passage_and_not_in_another() -> None:
    passages = ["Everyone Pay limits for verified accounts: you can send up to $3,500 per day and $10,000 per "
                "month. New accounts can send up to $1,000 per day.",
                "The Gold Savings Account earns an APY of 5.5% on the balance you maintain."]
    spans = Reader().read("What is the daily send limit for verified Everyone Pay accounts?", passages)
    assert spans[0].passage == 0 and spans[0].text.startswith("$3,500") and spans[0].margin > 0
    assert [s for s in spans if s.passage == 1 and s.margin > 0] == []
    titled = Reader().read("What is the APY of the Gold Savings Account?", [passages[1]],
                           contexts=["Gold Savings Account"])
    assert titled and all(passages[1][s.start:s.end] == s.text for s in titled) and titled[0].text == "5.5%"


@pytest.mark.slow
def test_the_shipped_reader_answers_from_the_column_the_question_names() -> None:
    table = ("| Account status | Daily send limit | Monthly send limit |\n| --- | --- | --- |\n"
             "| New accounts | $750 | $7,500 |\n| Verified accounts | $3,500 | $35,000 |\n")
    reader = Reader()
    monthly = reader.read("What is the monthly send limit for verified Everyone Pay accounts?", [table])
    daily = reader.read("What is the daily send limit for verified Everyone Pay accounts?", [table])
    assert monthly[0].text == "$35,000" and "$3,500" not in [s.text for s in monthly]  # the model alone says $3,500
    assert daily[0].text == "$3,500"
