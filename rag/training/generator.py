"""Fine-tune the generator to answer only from its passages: a LoRA adapter (peft) trained on
retrieval-augmented examples with distractors and refusals, in the spirit of RAFT.

Each example is the real prompt of `rag ask` (rag.generate.prompt) over a HaluEval question:
its own knowledge text (the oracle) among 2 to 4 distractors, other records' knowledge that
BM25 ranks high for the question, in shuffled positions. The target is the right answer
followed by the oracle's marker. In a quarter of the examples the oracle is left out and the
target is the fixed abstention sentence. The loss covers only the answer's tokens. The last
`dev_rows` rows are never trained on; the first `dev_examples` of them give the dev loss.

With a reader (the default: the shipped one), each example is built as `rag ask` builds it:
the reader reads the whole passages, each passage is cut around its best span, and the best
span is shown as evidence. The reader was trained on these rows, so its evidence is right
more often here than on new text; in `hint_noise` of the answerable examples the evidence is
the best span of a distractor instead, so the model learns to check it, not to copy it. A
model that writes plain sentences (Qwen) is shown no evidence, as `rag ask` shows it none.

A plain-sentence model should not learn to answer in fragments ("Arthur's Magazine."): with
`targets="sentences"` each right answer is first written out as a complete sentence by the base
model itself (`written_out`), kept only where it holds the answer word for word, and saved beside
the adapter so that a resumed run trains on the same targets.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag import lexical, metrics, models
from rag.answer import AnswerConfig
from rag.fsutil import atomic_write_text, read_jsonl
from rag.generate import excerpt, prompt, weights
from rag.reader import Reader, SpanReader, best_per_passage
from rag.retrieve import Hit

RECORD = "finetune.json"  # what was trained, on what, how long, with which losses
SENTENCES = "sentences.json"  # the written-out targets (targets="sentences"), reused on resume
REWRITE = ("Rewrite the answer to the question as one short, complete sentence. Use the answer's words exactly "
           "and add nothing else.")
log = logging.getLogger(__name__)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class FinetuneConfig:
    base: str = "SmolLM2-135M-Instruct"  # the shipped adapter's base; a LoRA run on the default Qwen is --base
    dev_rows: int = 1000  # the last rows of the file: the project's dev split, never trained on
    limit: int | None = None  # train on the first `limit` records only
    min_distractors: int = 2
    max_distractors: int = 4
    passage_chars: int | None = AnswerConfig.passage_chars  # passages cut as `rag ask` cuts them
    abstain_share: float = 0.25  # examples whose oracle is left out and whose target is prompt.ABSTAIN
    epochs: float = 1.0
    max_steps: int = -1  # stop after this many optimizer steps (-1: run the epochs)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # Adapt only the top N decoder layers (None: all). Gradients then stop there: on two CPU cores
    # the top 12 of SmolLM2-135M's 30 train 2.2x faster than all 30 (a batch of 4 x 520 tokens,
    # forward and backward: 6.0 s against 13.4 s). On a GPU, adapt them all.
    lora_layers: int | None = 12
    learning_rate: float = 3e-4
    batch_size: int = 4
    grad_accum: int = 2
    dev_examples: int = 32
    eval_steps: int = 50
    save_steps: int = 50
    device: str | None = None  # None: cuda when present, else cpu
    seed: int = 0
    max_tokens: int = 1024  # longer examples (prompt + answer) are reported and skipped
    reader: str | None = "shipped"  # a reader folder whose evidence the prompts show ("shipped"; None: no evidence)
    hint_noise: float = 0.2  # answerable examples whose evidence is a distractor's best span
    targets: str = "answers"  # "answers": the right answer as written; "sentences": written out (`written_out`)

    def __post_init__(self) -> None:
        if self.targets not in ("answers", "sentences"):
            raise ValueError(f"targets must be 'answers' or 'sentences', not {self.targets!r}")


@dataclass(frozen=True)
class Example:
    messages: prompt.Messages  # system and user turns, as `rag ask` builds them
    target: str  # the assistant's answer
    oracle: int | None  # the marker of the question's own passage; None when it was left out


def read_rows(path: Path, problems: list[str] | None = None) -> list[dict[str, str]]:
    """HaluEval QA rows, each checked for the fields training needs. A bad line is an error naming
    it, or, given a `problems` list, is recorded there and skipped."""
    return read_jsonl(path, ("knowledge", "question", "right_answer"), problems)


def encode_all(items: list[Example], tokenizer: Any, max_tokens: int,
               problems: list[str]) -> list[dict[str, list[int]]]:
    """`encode` each example, skipping (and recording in `problems`) those over `max_tokens`: one
    over-long record should neither stop a run nor dominate a batch's memory."""
    out = []
    for n, example in enumerate(items):
        encoded = encode(example, tokenizer)
        if len(encoded["input_ids"]) > max_tokens:
            problems.append(f"example {n} ({example.messages[-1]['content'][-60:]!r}...): "
                            f"{len(encoded['input_ids'])} tokens, over the {max_tokens} limit")
        else:
            out.append(encoded)
    return out


def split(rows: list[dict[str, str]], config: FinetuneConfig) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(training rows, dev rows): dev is the last `dev_rows` rows, whole records."""
    if len(rows) <= config.dev_rows:
        raise ValueError(f"{len(rows)} rows, need more than the {config.dev_rows} kept for dev")
    train, dev = rows[: len(rows) - config.dev_rows], rows[len(rows) - config.dev_rows:]
    return train[: config.limit], dev[: config.dev_examples]


def examples(rows: list[dict[str, str]], config: FinetuneConfig, seed: int,
             reader: SpanReader | None = None, sentences: dict[str, str] | None = None) -> list[Example]:
    """One example per row, distractors drawn from the same rows' knowledge by BM25; with a
    `reader`, passages cut around its spans and its evidence shown, as `rag ask` does. The target
    is the question's sentence in `sentences` where it has one, else its right answer."""
    rng = random.Random(seed)
    passages = list(dict.fromkeys(r["knowledge"] for r in rows))
    bm25 = lexical.fit(lexical.terms(passages))
    ranked = lexical.top(bm25, [r["question"] for r in rows], config.max_distractors + 4, len(passages))
    out = []
    for row, found in zip(rows, ranked, strict=True):
        others = [passages[i] for i in found if passages[i] != row["knowledge"]]
        chosen = others[: rng.randint(config.min_distractors, config.max_distractors)]
        keep_oracle = rng.random() >= config.abstain_share
        texts = [*chosen, row["knowledge"]] if keep_oracle else chosen
        rng.shuffle(texts)
        oracle = texts.index(row["knowledge"]) + 1 if keep_oracle else None
        hits = [_hit(n, text) for n, text in enumerate(texts, 1)]
        spans = best_per_passage(reader.read_hits(row["question"], hits, top=len(hits))) if reader else []
        around = {s.passage: (s.start, s.end) for s in spans}
        shown = [_narrow(row["question"], h, config.passage_chars, around.get(n)) for n, h in enumerate(hits)]
        if oracle and spans and rng.random() < config.hint_noise:
            spans = [s for s in spans if s.passage != oracle - 1] or spans
        markers = weights.writes_markers(config.base)  # a plain-sentence model is cited after writing
        hint = prompt.Hint(spans[0].passage, spans[0].text) if spans and markers else None
        answer = (sentences or {}).get(row["question"], row["right_answer"]).strip().rstrip(".")
        target = (f"{answer} [{oracle}]." if markers else f"{answer}.") if oracle else prompt.ABSTAIN
        out.append(Example(prompt.messages_for(row["question"], shown, hint, markers), target, oracle))
    return out


def written_out(model: Any, tokenizer: Any, rows: list[dict[str, str]], batch_size: int = 16) -> dict[str, str]:
    """question -> its right answer written out as one complete sentence by `model` (greedy), for
    the rows whose sentence holds the answer word for word (SQuAD-normalised) and says nothing
    after a first full stop; the others keep their answer as written."""
    import torch
    from tqdm.auto import tqdm

    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = {}
    for at in tqdm(range(0, len(rows), batch_size), desc="sentence targets", unit="batch"):
        batch = rows[at: at + batch_size]
        texts = [tokenizer.apply_chat_template(
            [{"role": "system", "content": REWRITE},
             {"role": "user", "content": f"Question: {r['question']}\nAnswer: {r['right_answer']}"}],
            tokenize=False, add_generation_prompt=True) for r in batch]
        encoded = tokenizer(texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            ids = model.generate(**encoded, max_new_tokens=48, do_sample=False, pad_token_id=pad)
        for row, new in zip(batch, ids[:, encoded["input_ids"].shape[1]:], strict=True):
            said = " ".join(tokenizer.decode(new, skip_special_tokens=True).split())
            one_sentence = said.count(". ") == 0 and len(said) > len(row["right_answer"])
            if one_sentence and metrics.contains(said, row["right_answer"]):
                out[row["question"]] = said
    return out


def _sentences(model: Any, tokenizer: Any, rows: list[dict[str, str]], out: Path) -> dict[str, str]:
    """`written_out` for `rows`, read from out/SENTENCES when an earlier run wrote them."""
    path = out / SENTENCES
    if path.is_file():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved
    written = written_out(model, tokenizer, rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(written, indent=0) + "\n")
    return written


def _hit(rank: int, text: str) -> Hit:
    """A whole passage, named like a file after its first words."""
    name = "-".join(re.findall(r"[a-z0-9]+", text.lower())[:3]) or "passage"
    return Hit(rank, rank, f"{name}.txt", None, 0, len(text), 0.0, "", text)


def _narrow(question: str, hit: Hit, passage_chars: int | None, keep: tuple[int, int] | None) -> Hit:
    """The passage as the prompt shows it: cut around the reader's span, as `rag ask` cuts it."""
    return excerpt.narrow(question, hit, passage_chars, keep) if passage_chars else hit


def encode(example: Example, tokenizer: Any) -> dict[str, list[int]]:
    """Token ids of prompt + answer, with labels only on the answer (-100 elsewhere)."""
    prompt_ids = _ids(tokenizer.apply_chat_template(example.messages, add_generation_prompt=True))
    full = _ids(tokenizer.apply_chat_template([*example.messages, {"role": "assistant", "content": example.target}]))
    if full[: len(prompt_ids)] != prompt_ids:
        raise ValueError("the chat template does not extend the prompt with the answer; cannot mask the prompt")
    labels = [-100] * len(prompt_ids) + full[len(prompt_ids):]
    return {"input_ids": full, "attention_mask": [1] * len(full), "labels": labels}


def _ids(encoded: Any) -> list[int]:
    """apply_chat_template returns a list, or a BatchEncoding in newer transformers."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def collate(items: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Pad on the left, so every answer ends the row, and ask the model for the logits of the
    last positions only: projecting all ~500 prompt positions onto the 49k-word vocabulary
    would cost a fifth of each step for tokens that carry no loss."""
    import torch

    width = max(len(i["input_ids"]) for i in items)
    answer = max(sum(label != -100 for label in i["labels"]) for i in items)

    def padded(key: str, value: int) -> Any:
        return torch.tensor([[value] * (width - len(i[key])) + i[key] for i in items])

    return {"input_ids": padded("input_ids", pad_id), "attention_mask": padded("attention_mask", 0),
            "labels": padded("labels", -100), "logits_to_keep": answer + 1}


def answer_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """Cross-entropy of the answer tokens, from the kept last logits (see `collate`): the logit at
    position p predicts token p + 1, so the first K kept logits predict the last K labels."""
    import torch

    logits = outputs.logits[:, :-1].float()
    target = labels[:, -logits.shape[1]:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    return loss / (num_items_in_batch if num_items_in_batch is not None else (target != -100).sum())


def finetune(data: Path, out: Path, config: FinetuneConfig = FinetuneConfig()) -> dict[str, object]:
    """Train a LoRA adapter and write it to `out` with its record. Resumes from the last checkpoint
    under out/checkpoints when there is one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    set_seed(config.seed)
    problems: list[str] = []
    train_rows, dev_rows = split(read_rows(data, problems), config)
    base = weights.resolve(config.base)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    with models.quiet_loading():
        loaded = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16 if bf16 else torch.float32)
    loaded.to(device)
    sentences = _sentences(loaded, tokenizer, train_rows + dev_rows, out) if config.targets == "sentences" else None
    reader = None if config.reader is None else Reader(None if config.reader == "shipped" else config.reader)
    train_examples = examples(train_rows, config, config.seed, reader, sentences)
    train_set = encode_all(train_examples, tokenizer, config.max_tokens, problems)
    dev_set = encode_all(examples(dev_rows, config, config.seed + 1, reader, sentences), tokenizer, config.max_tokens,
                         problems)
    for problem in problems:
        log.warning("skipped: %s", problem)
    layers = loaded.config.num_hidden_layers
    top = range(layers - min(config.lora_layers or layers, layers), layers)
    model = get_peft_model(loaded, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                              lora_dropout=config.lora_dropout, target_modules=LORA_TARGETS,
                                              layers_to_transform=list(top), task_type="CAUSAL_LM"))
    checkpoints = out / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0, logging_steps=10,
        eval_strategy="steps", eval_steps=config.eval_steps, save_steps=config.save_steps, save_total_limit=2,
        seed=config.seed, data_seed=config.seed, bf16=bf16, use_cpu=device == "cpu", report_to=[],
        train_sampling_strategy="group_by_length", dataloader_num_workers=0, disable_tqdm=False)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
                      data_collator=functools.partial(collate, pad_id=pad), compute_loss_func=answer_loss)
    start = time.perf_counter()
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    result = trainer.train(resume_from_checkpoint=resume)
    last = trainer.state.log_history[-2:]  # the final step's dev loss, when the schedule just measured it
    done = [e["eval_loss"] for e in last if "eval_loss" in e and e.get("step") == result.global_step]
    dev_loss = done[0] if done else trainer.evaluate()["eval_loss"]
    record = {"base": models.canonical_name(config.base), "config": asdict(config), "data": str(data),
              "train_records": len(train_rows), "dev_records": len(dev_rows), "skipped": problems,
              "abstain_examples": sum(e.oracle is None for e in train_examples),
              "sentence_targets": len(sentences) if sentences is not None else None,
              "steps": result.global_step, "train_loss": round(result.training_loss, 4),
              "dev_loss": round(dev_loss, 4), "resumed_from": resume, "device": device,
              "train_s": round(time.perf_counter() - start, 1),
              "log": [e for e in trainer.state.log_history if "loss" in e or "eval_loss" in e]}
    _save(model, out, record, config.base)
    return record


def _save(model: Any, out: Path, record: dict[str, object], base: str) -> None:
    """The adapter (its config naming the base by the project's name, not a cache path) and the record."""
    model.peft_config["default"].base_model_name_or_path = base
    model.save_pretrained(str(out), save_embedding_layers=False)
    atomic_write_text(out / RECORD, json.dumps(record, indent=1) + "\n")
