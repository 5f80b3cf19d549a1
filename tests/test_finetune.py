"""Fine-tuning data, batching and loss (fast), and a real two-step LoRA run that resumes and loads (slow)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from rag.generate import backends
from rag.generate.prompt import ABSTAIN
from rag.reader import Span
from rag.retrieve import Hit
from rag.training import generator as ft
from tests.conftest import write_halueval


@pytest.fixture
def rows(tmp_path: Path) -> list[dict[str, str]]:
    return ft.read_rows(write_halueval(tmp_path / "qa.jsonl", 240))


def test_examples_hold_the_oracle_among_distractors_or_abstain(rows: list[dict[str, str]]) -> None:
    config = ft.FinetuneConfig(abstain_share=0.25)
    made = ft.examples(rows, config, seed=0)
    assert len(made) == len(rows)
    refusals = [e for e in made if e.oracle is None]
    assert 0.15 < len(refusals) / len(made) < 0.35 and all(e.target == ABSTAIN for e in refusals)
    for row, example in zip(rows, made, strict=True):
        user = example.messages[1]["content"]
        shown = user.count("<<<")
        assert example.messages[0]["role"] == "system" and user.endswith(f"Question: {row['question']}")
        if example.oracle is None:
            assert row["knowledge"] not in user and 2 <= shown <= 4
        else:
            assert 3 <= shown <= 5 and example.target == f"{row['right_answer']} [{example.oracle}]."
            assert f"[{example.oracle}] (from " in user.split(row["knowledge"])[0].rsplit("<<<", 1)[0]
    assert len({e.oracle for e in made}) > 3, "the oracle should move around"
    assert ft.examples(rows, config, seed=0) == made


class YearReader:
    """Reads every year as a span, strongest in the passage about the question's numbered thing."""

    name = "years"

    def __init__(self) -> None:
        self.policy: dict[str, Any] = {}

    def read_hits(self, question: str, hits: Sequence[Hit], top: int = 3) -> list[Span]:
        asked = re.search(r"number \d+ ", question).group()  # type: ignore[union-attr]
        spans = [Span(n, m.start(), m.end(), m.group(), 5.0 if asked in h.text else 1.0 - n, 0.0)
                 for n, h in enumerate(hits) for m in re.finditer(r"\b\d{4}\b", h.text)]
        return sorted(spans, key=lambda s: -s.margin)[:top]


def test_examples_show_the_readers_evidence_as_rag_ask_does(rows: list[dict[str, str]]) -> None:
    made = ft.examples(rows, ft.FinetuneConfig(hint_noise=0.3), seed=0, reader=YearReader())
    answerable = [(r, e) for r, e in zip(rows, made, strict=True) if e.oracle is not None]
    noisy = 0
    for row, example in answerable:
        evidence = re.search(r'\nEvidence: passage \[(\d+)\] says "(\d+)"\.$', example.messages[1]["content"])
        assert evidence, example.messages[1]["content"][-200:]
        assert evidence.group(2) in example.messages[1]["content"].split("Question:")[0]
        noisy += evidence.group(2) != row["right_answer"]
        assert example.target == f"{row['right_answer']} [{example.oracle}]."  # the answer, whatever the evidence
    assert 0.15 < noisy / len(answerable) < 0.45, "about hint_noise of the evidence should point elsewhere"
    refusals = [e for e in made if e.oracle is None]
    assert refusals and all("Evidence:" in e.messages[1]["content"] and e.target == ABSTAIN for e in refusals)
    plain = ft.examples(rows, ft.FinetuneConfig(), seed=0)
    assert not any("Evidence:" in e.messages[1]["content"] for e in plain)


def test_a_plain_sentence_model_learns_written_out_answers_without_evidence(rows: list[dict[str, str]]) -> None:
    """Qwen writes plain sentences: it is shown no evidence (as `rag ask` shows it none) and learns the
    sentence written out for a question where there is one, the answer as written elsewhere."""
    sentences = {rows[0]["question"]: f"It was {rows[0]['right_answer']} all along."}
    config = ft.FinetuneConfig(base="Qwen2.5-Coder-0.5B-Instruct", abstain_share=0.0)
    made = ft.examples(rows, config, seed=0, reader=YearReader(), sentences=sentences)
    assert made[0].target == f"It was {rows[0]['right_answer']} all along."
    assert made[1].target == f"{rows[1]['right_answer']}."
    assert not any("Evidence:" in e.messages[1]["content"] for e in made)
    with pytest.raises(ValueError, match="targets must be"):
        ft.FinetuneConfig(targets="poems")


def test_dev_rows_are_whole_records_never_trained_on(rows: list[dict[str, str]]) -> None:
    train, dev = ft.split(rows, ft.FinetuneConfig(dev_rows=40, dev_examples=10, limit=50))
    assert train == rows[:50] and dev == rows[200:210]
    with pytest.raises(ValueError, match="need more than"):
        ft.split(rows[:40], ft.FinetuneConfig(dev_rows=40))


def test_bad_rows_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"knowledge": "k", "question": "q", "right_answer": "a"}\n\n{"question": "q"}\n')
    with pytest.raises(ValueError, match="line 3 lacks"):
        ft.read_rows(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        ft.read_rows(path)


def test_bad_rows_and_over_long_examples_are_reported_and_skipped(tmp_path: Path, rows: list[dict[str, str]]) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n{not json\n" + json.dumps({"question": "q"}) + "\n"
                    + json.dumps(rows[1]) + "\n")
    problems: list[str] = []
    assert ft.read_rows(path, problems) == rows[:2]
    assert [p.split(": ", 1)[1][:22] for p in problems] == ["line 2 is not JSON (Ex", "line 3 lacks a string "]

    class Words:  # a tokenizer whose chat template is one token per word
        def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
            return [len(w) for m in messages for w in m["content"].split()]

    made = [ft.Example([{"role": "user", "content": "passage " * n}], "answer [1].", 1) for n in (100, 2000)]
    kept = ft.encode_all(made, Words(), 1024, problems)
    assert len(kept) == 1 and "tokens, over the 1024 limit" in problems[-1] and len(problems) == 3


def test_collate_pads_left_and_keeps_only_the_answer_logits() -> None:
    items = [{"input_ids": [5, 6, 7, 8], "attention_mask": [1] * 4, "labels": [-100, -100, 7, 8]},
             {"input_ids": [9, 10], "attention_mask": [1, 1], "labels": [-100, 10]}]
    batch = ft.collate(items, pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [0, 0, 9, 10]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, -100, -100, 10]]
    assert batch["logits_to_keep"] == 3


def test_answer_loss_equals_the_usual_shifted_loss_on_the_answer() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[-100, -100, -100, -100, 3, 4], [-100, -100, -100, -100, -100, 9]])
    usual = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1),
                                              ignore_index=-100)

    class Out:
        pass

    kept = Out()
    kept.logits = logits[:, -3:]  # type: ignore[attr-defined]  # logits_to_keep = 2 answer tokens + 1
    assert torch.allclose(ft.answer_loss(kept, labels), usual)


@pytest.mark.slow
def test_a_real_lora_run_resumes_and_its_adapter_answers(tmp_path: Path, generator: Any) -> None:
    data = write_halueval(tmp_path / "qa.jsonl", 1024)  # 24 training rows, 1,000 held out
    config = ft.FinetuneConfig(limit=16, batch_size=2, grad_accum=1, max_steps=1, eval_steps=1, save_steps=1,
                               dev_examples=4, lora_r=4, lora_layers=2, reader=None, targets="sentences")
    out = tmp_path / "adapter"
    first = ft.finetune(data, out, config)
    assert first["steps"] == 1 and first["resumed_from"] is None
    written = json.loads((out / ft.SENTENCES).read_text())  # by the base model, each holding its answer
    rows = {r["question"]: r["right_answer"] for r in ft.read_rows(data)}
    assert written and first["sentence_targets"] == len(written)
    assert all(rows[q].lower() in s.lower() for q, s in written.items())
    second = ft.finetune(data, out, ft.FinetuneConfig(**{**config.__dict__, "max_steps": 2}))
    assert second["steps"] == 2 and str(second["resumed_from"]).endswith("checkpoint-1")
    assert json.loads((out / ft.RECORD).read_text())["steps"] == 2
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "SmolLM2-135M-Instruct" and adapter_config["r"] == 4
    assert (out / "adapter_model.safetensors").stat().st_size < 2_000_000
    tuned = backends.make("SmolLM2-135M-Instruct", adapter=out)
    assert tuned.name == "SmolLM2-135M-Instruct+adapter"
    messages = [{"role": "user", "content": "Say hello."}]
    text = "".join(tuned.stream(messages, backends.Sampling(max_new_tokens=8)))
    assert text.strip()
    def top_query(model: Any) -> torch.Tensor:
        return model.model.layers[-1].self_attn.q_proj.weight.detach()

    assert not torch.equal(top_query(generator.model), top_query(tuned.model))  # type: ignore[attr-defined]
    assert torch.equal(generator.model.model.layers[0].self_attn.q_proj.weight,  # below the adapted layers
                       tuned.model.model.layers[0].self_attn.q_proj.weight)  # type: ignore[attr-defined]
