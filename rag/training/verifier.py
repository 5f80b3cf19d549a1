"""Train the verifier: a cross-encoder from the packaged MiniLM body that reads (passage, claim)
and gives P(the passage supports the claim).

Pairs come from HaluEval QA rows, whose hallucinated answers are fluent and on topic, so
the model cannot lean on topic overlap alone:
- supported: the row's knowledge with "question + right answer", and with one of its own
  sentences copied (a claim can be a whole statement, not only an answer);
- supported also: the right answer written as a sentence (the knowledge's sentence holding it,
  or "The answer is X."), so that the form of an answer says nothing about its support;
- unsupported: the knowledge with "question + hallucinated answer"; with the right answer (short,
  or in its sentence) or a knowledge sentence after one number or name in it was swapped (the near-copies that token
  overlap cannot tell apart, as in VitaminC); and another row's knowledge (BM25's best match for
  the question) with the right answer, which is true but not said by that passage.
Plain statements, as VitaminC and `rag verify` give them (no question; the premise half the
time one sentence, as VitaminC's evidence is):
- supported: a sentence copied, or cut to its first clause or without its parenthesis, and a
  number or year restated as a bound that holds ("more than 40" for 52, "after 1950" for 1961);
- unsupported: a bound that does not hold, the sentence negated, a swapped name or number, and
  a sentence checked against the passage with that sentence taken out ("Neither": same topic,
  the fact missing).
Synthetic pages, since HaluEval has neither (nothing from any evaluation set is read):
- `howto` how-to pages of invented tools (`rag.training.howto`): a task said with the command the
  page gives for it is supported; with another task's or platform's command from the same page, a
  changed command, or for a task the page lacks, it is not;
- `tables` Markdown tables of invented products (`rag.training.tables`), read written out by row
  and column as `rag ask` reads them: the asked cell is supported; another row's or column's cell,
  or any cell for a product or column the page lacks, is not.
The rows just before the last `dev_rows` calibrate the threshold; the last `dev_rows` are the
project's dev split, never trained or calibrated on.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag import bounds, crossencoder, lexical, metrics, models
from rag.fsutil import read_jsonl
from rag.tables import linearize
from rag.training import howto, loop, tables
from rag.verify import SPEC, claim

FIELDS = ("knowledge", "question", "right_answer", "hallucinated_answer")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A quantity to restate as a bound: "$ 50.3", "12,547", "442"; not part of a word or a longer number.
# A count with its unit after it ("728 beds", "$ 50.3 million"), not a name's number ("US 88") nor
# one already bounded ("about 27").
QUANTITY = re.compile(r"(?<![\w.,$(-])(\$\s?)?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?=\s+[a-z])")
BOUNDED = {"about", "nearly", "almost", "than", "over", "under", "least", "approximately", "around", "some"}
DATED = re.compile(r"\bin\s+(1[5-9]\d\d|20\d\d)\b(?!\s*[-–])")
MONTH = f"(?:{'|'.join(m.capitalize() for m in bounds.MONTHS)})"
AUXILIARY = re.compile(r"\b(?:is|was|are|were|has|had|have|can|could|will|would)\b(?!\s+(?:not|never)\b)")
PARENTHESIS = re.compile(r"\s*(?:\([^()]*\)|-LRB-.*?-RRB-)")
# A run of capitalised words, not the first word of the text: a name to swap.
NAME = re.compile(r"(?<=\s)[A-Z][\w'’.-]*(?:\s+(?:of\s+|the\s+|de\s+)?[A-Z][\w'’.-]*)*")
SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s+|(?=[A-Z]))")


@dataclass(frozen=True)
class VerifierConfig:
    base: str = "all-MiniLM-L6-v2"
    dev_rows: int = 1000  # the last rows of the file: never trained or calibrated on
    calibration_rows: int = 500  # the rows before those: pick the threshold
    limit: int | None = None  # train on the first `limit` rows only
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup: float = 0.1
    max_length: int = 192  # premise + claim tokens (HaluEval knowledge is ~75 words)
    seed: int = 0
    threads: int | None = None
    howto: int = 0  # synthetic how-to pages (2 pairs each)
    tables: int = 0  # synthetic table questions (1 or 2 pairs each)


@dataclass(frozen=True)
class Pair:
    premise: str
    hypothesis: str
    label: int  # 1 supported, 0 not
    kind: str  # how it was made (see the module docstring)


def split(path: Path, config: VerifierConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                      list[dict[str, Any]]]:
    """Train, calibration and dev rows, in file order (dev last, as every project split here)."""
    rows = read_jsonl(path, FIELDS)
    held = config.dev_rows + config.calibration_rows
    if len(rows) <= held:
        raise ValueError(f"{path}: {len(rows)} rows, need more than the {held} kept for calibration and dev")
    train = rows[: len(rows) - held][: config.limit]
    return train, rows[len(rows) - held: len(rows) - config.dev_rows], rows[len(rows) - config.dev_rows:]


def qa_pairs(rows: list[dict[str, Any]]) -> list[Pair]:
    """HaluEval's own task: knowledge with the right answer (supported) and the hallucinated one."""
    return [p for r in rows for p in (Pair(r["knowledge"], claim(r["question"], r["right_answer"]), 1, "right"),
                                      Pair(r["knowledge"], claim(r["question"], r["hallucinated_answer"]), 0,
                                           "hallucinated"))]


def pairs(rows: list[dict[str, Any]], seed: int = 0) -> list[Pair]:
    """Every kind of pair for `rows` (see the module docstring), shuffled with `seed`."""
    rng = random.Random(seed)
    names = [n for r in rows for n in NAME.findall(" " + r["knowledge"])]
    knowledge = list(dict.fromkeys(r["knowledge"] for r in rows))
    bm25 = lexical.fit(lexical.terms(knowledge))
    nearest = lexical.top(bm25, [r["question"] for r in rows], 3, len(knowledge))
    out = qa_pairs(rows)
    for row, near in zip(rows, nearest, strict=True):
        text, right = row["knowledge"], claim(row["question"], row["right_answer"])
        other = next((knowledge[i] for i in near if knowledge[i] != text), None)
        if other and row["right_answer"].lower() not in other.lower():
            out.append(Pair(other, right, 0, "other_passage"))
        swapped = swap(row["right_answer"], text, names, rng)
        if swapped:
            out.append(Pair(text, claim(row["question"], swapped), 0, "swapped_answer"))
        out += _answer_sentences(row, swapped, rng)
        out += statements(text, names, rng)
    rng.shuffle(out)
    return out


def synthetic(config: VerifierConfig) -> list[Pair]:
    """The synthetic how-to and table pairs `config` asks for (see the module docstring)."""
    out = [Pair(c.passage, claim(c.question, c.sentence) if c.question else c.sentence, c.label, c.kind)
           for c in howto.claims(config.howto, config.seed)]
    for q in tables.questions(config.tables, config.seed):
        premise = linearize(f"{q.context}\n{q.passage}").text
        rows = [line for line in q.passage.splitlines() if line.startswith("|")][2:]  # past header and rule
        cells = [c.strip() for line in rows for c in line.strip("|").split("|")[1:]]
        value = q.passage[q.start: q.end] if q.start >= 0 else ""
        others = [c for c in cells if c != value]
        if value:
            out.append(Pair(premise, claim(q.question, value), 1, "table_cell"))
        if others:
            out.append(Pair(premise, claim(q.question, random.Random(q.question).choice(others)), 0,
                            "other_cell" if value else "table_without_answer"))
    return out


def statements(text: str, names: list[str], rng: random.Random) -> list[Pair]:
    """Plain-statement pairs from one sentence of `text` (see the module docstring)."""
    every = sentences(text)
    sentence = rng.choice(every)
    premise = sentence if rng.random() < 0.5 else text
    made = [(sentence, 1, "copied_sentence"), (swap(sentence, premise, names, rng), 0, "swapped_sentence"),
            (negate(sentence), 0, "negated_sentence"), (part(sentence), 1, "part_sentence")]
    out = [Pair(premise, claim_, label, kind) for claim_, label, kind in made if claim_]
    restated = [(s, b) for s in every for b in [comparison(s, rng)] if b]
    for source, (bounded, holds) in rng.sample(restated, min(2, len(restated))):
        out.append(Pair(source if premise == sentence else text, bounded, holds, "bound_sentence"))
    if len(every) > 1:
        out.append(Pair(" ".join(s for s in every if s != sentence), sentence, 0, "missing_sentence"))
    return out


def negate(sentence: str) -> str | None:
    """`sentence` with "not" after its first auxiliary verb ("was" → "was not"), or None."""
    found = AUXILIARY.search(sentence)
    return f"{sentence[: found.end()]} not{sentence[found.end():]}" if found else None


def part(sentence: str) -> str | None:
    """What `sentence` says without its parenthesis, or cut to its first clause: still supported
    (a claim need not repeat everything its passage says). None when neither leaves 6 words."""
    shorter = PARENTHESIS.sub("", sentence)
    if shorter == sentence:
        shorter = re.split(r",\s|;\s|\sand\s", sentence, maxsplit=1)[0].rstrip(" .") + "."
    return shorter if shorter != sentence and len(shorter.split()) >= 6 else None


def comparison(sentence: str, rng: random.Random) -> tuple[str, int] | None:
    """A year or quantity in `sentence` restated as a bound, true or false with equal odds:
    ("... after 1950 ...", 1) for "in 1961"; ("... more than 60 ...", 0) for 52. None without one."""
    holds = rng.random() < 0.5
    found = list(DATED.finditer(sentence)) + [m for m in QUANTITY.finditer(sentence) if _countable(sentence, m)]
    if not found:
        return None
    match = rng.choice(found)
    if match.re is DATED:
        year, later = int(match.group(1)), rng.random() < 0.5
        year_bound = year - rng.randint(1, 30) if later == holds else year + rng.randint(1, 30)
        word = "after" if later else "before"
        return f"{sentence[: match.start()]}{word} {year_bound}{sentence[match.end():]}", int(holds)
    value, above = _number(match.group(2)), rng.random() < 0.5
    factor = 1 + rng.uniform(0.1, 0.6)
    bound = _like(match.group(2), value / factor if above == holds else value * factor)
    if _number(bound) == value:  # rounded back onto the value ("4" for 3.6)
        return None
    words = rng.choice(("more than", "over")) if above else rng.choice(("less than", "under"))
    return f"{sentence[: match.start()]}{words} {match.group(1) or ''}{bound}{sentence[match.end():]}", int(holds)


def _countable(sentence: str, found: re.Match[str]) -> bool:
    """Not a year, a day of a date, a name's number ("Route 66") or a number already bounded."""
    before = sentence[: found.start()].split()[-1:] or [""]
    year = 1500 <= _number(found.group(2)) < 2100 and "." not in found.group(2)
    return not (year or before[0][:1].isupper() or before[0].lower() in BOUNDED
                or re.search(rf"\b{MONTH}\W*$", sentence[: found.start()])
                or re.match(rf"\W*{MONTH}\b", sentence[found.end():]))


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _like(original: str, value: float) -> str:
    """`value` written as `original` is (decimals, thousands separators)."""
    decimals = len(original.partition(".")[2])
    return f"{value:,.{decimals}f}" if "," in original else f"{value:.{decimals}f}"


def _answer_sentences(row: dict[str, Any], swapped: str | None, rng: random.Random) -> list[Pair]:
    """The right answer written as a sentence (the knowledge's own sentence that holds it, or "The
    answer is X.") is supported, and that sentence with the answer swapped is not: without these,
    HaluEval teaches "short answer = supported, sentence = hallucinated" (its hallucinated answers
    are sentences), and a verifier that learned so rejects every right answer written out in full."""
    text, question, right = row["knowledge"], row["question"], row["right_answer"]
    holding = [s for s in sentences(text) if right.lower() in s.lower()]
    sentence = rng.choice(holding) if holding and rng.random() < 0.7 else f"The answer is {right}."
    out = [Pair(text, claim(question, sentence), 1, "answer_sentence")]
    if swapped:
        changed = re.sub(re.escape(right), swapped.replace("\\", "\\\\"), sentence, count=1, flags=re.IGNORECASE)
        if changed.lower() not in text.lower():
            out.append(Pair(text, claim(question, changed), 0, "swapped_answer_sentence"))
    return out


def sentences(text: str) -> list[str]:
    """HaluEval knowledge joins its paragraphs without a space ("...century.First for Women ...")."""
    return [s.strip() for s in SENTENCE_END.split(text) if len(s.split()) >= 4] or [text]


def swap(text: str, premise: str, names: list[str], rng: random.Random) -> str | None:
    """`text` with one number changed or one name replaced by another name (from the premise when
    it has one the text lacks: the hardest case), or None when it has neither. The new value never
    occurs in the premise, so the result is not supported by it."""
    numbers = NUMBER.findall(text)
    if numbers and (rng.random() < 0.5 or not NAME.search(" " + text)):
        old = rng.choice(numbers)
        new = _other_number(old, rng)
        return None if new in premise else text.replace(old, new, 1)
    found = NAME.findall(" " + text)
    if not found:
        return None
    old = rng.choice(found)
    local = [n for n in NAME.findall(" " + premise) if n not in text and old not in n]
    pool = local if local and rng.random() < 0.5 else names
    name = rng.choice(pool) if pool else None
    if not name or name == old or (name.lower() in premise.lower() and name not in local):
        return None
    changed = text.replace(old, name, 1)
    return None if changed.lower() in premise.lower() else changed  # swapping may rebuild a true sentence


def _other_number(value: str, rng: random.Random) -> str:
    digits = [c for c in value if c.isdigit()]
    while True:
        candidate = "".join(rng.choice("0123456789") if c.isdigit() and rng.random() < 0.5 else c for c in value)
        if candidate != value and not (len(digits) > 1 and candidate[0] == "0"):
            return candidate


def train(data: Path, out: Path, config: VerifierConfig = VerifierConfig(),
          progress: loop.Progress | None = None) -> dict[str, object]:
    """Fine-tune, calibrate the threshold, and write `out` (weights + verifier.json)."""
    loop.seed_and_threads(config.seed, config.threads)
    train_rows, calibration_rows, _ = split(data, config)
    examples = pairs(train_rows, config.seed) + synthetic(config)
    random.Random(config.seed).shuffle(examples)
    tokenizer, model = crossencoder.trainable(config.base)
    start = time.perf_counter()
    steps, final = loop.fit(model, examples, lambda batch: _loss(model, tokenizer, batch, config.max_length),
                            epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                            warmup=config.warmup, seed=config.seed, first_loss=math.log(2), progress=progress)
    calibration = qa_pairs(calibration_rows)
    scores = _scores(model, tokenizer, calibration, config.max_length)
    threshold = best_threshold(scores, [p.label for p in calibration])
    kinds: dict[str, int] = {}
    for p in examples:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    record = {"base": models.canonical_name(config.base), "max_length": config.max_length, "threshold": threshold,
              "config": asdict(config), "data": str(data), "rows": len(train_rows), "pairs": kinds,
              "steps": steps, "final_loss": round(final, 4), "train_s": round(time.perf_counter() - start, 1)}
    crossencoder.save(model, out, SPEC, record)
    return record


def best_threshold(scores: list[float], labels: list[int]) -> float:
    """The cut on `scores` with the best balanced accuracy (ties: the middle of the best run)."""
    candidates = sorted(set(scores))
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(candidates)] or [0.5]
    results = [metrics.balanced_accuracy([s >= c for s in scores], labels) for c in cuts]
    best = max(results)
    winners = [c for c, r in zip(cuts, results, strict=True) if r == best]
    return round(winners[len(winners) // 2], 4)


def _loss(model: Any, tokenizer: Any, batch: list[Pair], max_length: int) -> Any:
    import torch

    logits = _logits(model, tokenizer, batch, max_length)
    labels = torch.tensor([float(p.label) for p in batch])
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def encode(tokenizer: Any, batch: list[Pair], max_length: int) -> Any:
    """Premise and hypothesis as one input, cut to `max_length` by trimming the longer of the two
    (a long hallucinated answer must not crash a run that only trims premises)."""
    return tokenizer([p.premise for p in batch], [p.hypothesis for p in batch], truncation="longest_first",
                     max_length=max_length, padding=True, return_tensors="pt")


def _logits(model: Any, tokenizer: Any, batch: list[Pair], max_length: int) -> Any:
    return model(**encode(tokenizer, batch, max_length)).logits.view(-1)


def _scores(model: Any, tokenizer: Any, examples: list[Pair], max_length: int, batch: int = 64) -> list[float]:
    import torch

    with torch.inference_mode():
        return [float(s) for first in range(0, len(examples), batch)
                for s in torch.sigmoid(_logits(model, tokenizer, examples[first: first + batch], max_length))]
