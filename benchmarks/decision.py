"""Choose the answer-or-abstain policy (rag.decision.Policy) on HaluEval dev rows, never on SQuAD.

The retrieved setting of `rag eval generator` over the last 1,000 HaluEval rows (the project's
dev split; a seeded 30 % made unanswerable by taking out every passage that holds the answer):
each question is drafted once by the reader and the generator and checked by the verifier,
then the decision (rag.decision.decide, the very function `rag ask` runs) is replayed under
every policy of a grid. Each row prints answer recall, short-answer F1, citation accuracy, wrong
abstention, abstention on unanswerable questions and hallucination; the policy with the best
utility (right answers, by answer recall, plus abstentions on the unanswerable questions, over all
questions) is the one to write into the reader's `reader.json` ("policy") and its model card. A
supported draft whose answering sentence lacks a span strong enough to answer is kept, or (`compare`)
kept only if the verifier supports it at least as well as the span, or (`agree`) replaced by the span
wherever the two differ, which waits for the whole draft before showing any of it and is chosen only
with `--agree`. `--drafts FILE` keeps the checked drafts, so that a second run replays the grid in
seconds.

    python benchmarks/decision.py --data ../shared/data/halueval-qa-train.jsonl --sample 400
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from rag import verify
from rag.answer import AnswerConfig, Answerer
from rag.decision import ABSTAIN_BELOW, Gate, Policy, decide
from rag.evaluation import generator as eg
from rag.evaluation import retrieval as ev
from rag.fsutil import atomic_path, atomic_write_text
from rag.generate import backends, weights
from rag.generate.backends import Sampling
from rag.pipeline import Pipeline
from rag.reader import SPEC, Reader

KEEP = (-99.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
SPAN = (-2.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 99.0)
FIELDS = ("keep_margin", "span_margin", "agree", "compare")  # a policy as reader.json records it
# How a supported draft meets a strong span it does not hold: kept, compared by support, or replaced.
CONFLICT = ((False, False), (False, True), (True, False))


class Remembered:
    """A verifier that scores each distinct pair once (the grid asks for the same spans again)."""

    def __init__(self, inner: verify.Verifier) -> None:
        self.inner, self.name, self.threshold = inner, inner.name, inner.threshold
        self.seen: dict[tuple[str, str], float] = {}

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        new = [p for p in dict.fromkeys(pairs) if p not in self.seen]
        self.seen |= dict(zip(new, self.inner.scores(new), strict=True))
        return [self.seen[p] for p in pairs]


def utility(scores: dict[str, float | None]) -> float:
    """Right answers plus abstentions, over all questions. An answer is right when its text holds a
    gold answer (answer recall): F1 against a short gold answer would rank a written-out sentence
    below a bare span that says the same."""
    answerable, unanswerable = scores["answerable"] or 0, scores["unanswerable"] or 0
    right = (scores["answer_recall"] or 0.0) * answerable + (scores["abstention"] or 0.0) * unanswerable
    return right / max(1, answerable + unanswerable)


def draft(args: argparse.Namespace, dataset: ev.Dataset, todo: list[eg.Item], checker: Remembered,
          reader: Reader) -> list[eg.Outcome]:
    """Each question drafted once by the reader and the generator, checked, with no decision made."""
    with tempfile.TemporaryDirectory() as tmp:
        index, by_path = ev.build_index(dataset, args.cache or Path(tmp))
        passages = eg.Passages(dataset, index, by_path, AnswerConfig.k)
        sampling = Sampling(max_new_tokens=64, refusal_bias=args.refusal_bias, copy_only=args.copy_only,
                            context_guidance=args.context_guidance)
        retriever = index.live()  # the relevance gate as rag ask has it; no reader gate: the grid replays it
        config = AnswerConfig(sampling=sampling, evidence_hint=args.hint)
        gate = Gate(min_dense_score=ABSTAIN_BELOW.get(retriever.embedder))
        generator = backends.make(args.generator, adapter=args.adapter)
        drafts = Pipeline(Answerer(retriever, generator, config, reader, gate), checker)
        outcomes = []
        for item in tqdm(todo, desc="draft", unit="question", disable=None):
            answer = drafts.ask_over(item.question, passages.retrieved(item))
            gold = next((n for n, h in enumerate(answer.retrieved, 1) if passages.is_gold(h, item)), None)
            outcomes.append(eg.Outcome(item, "retrieved", answer, gold))
        index.close()
    return outcomes


def drafted_by(args: argparse.Namespace, reader: Reader) -> dict[str, object]:
    """What the drafts depend on: a --drafts file made with other settings, or before the reader's or the
    verifier's weights changed, is drafted again (the policy in reader.json aside: the grid replaces it)."""
    weights = [f for folder in (reader.path, verify.SHIPPED_VERIFIER)
               for f in sorted(Path(folder).glob("*")) if f.name != SPEC and f.suffix != ".md"]
    return {**{k: str(getattr(args, k)) for k in ("data", "sample", "reader", "generator", "adapter", "hint",
                                                  "refusal_bias", "copy_only", "context_guidance")},
            "weights": [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in weights]}


def remembered(path: Path, key: dict[str, object]) -> list[eg.Outcome] | None:
    """The drafts kept at `path`, if it holds drafts made as `key` says (a pickle this script wrote)."""
    if not path.exists():
        return None
    kept = pickle.loads(path.read_bytes())
    return kept["outcomes"] if kept.get("drafted_by") == key else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="HaluEval QA JSONL (its last 1000 rows are used)")
    parser.add_argument("--sample", type=int, default=400, help="questions drawn with a fixed seed (400)")
    parser.add_argument("--reader", type=Path, help="reader folder (default: the shipped one)")
    parser.add_argument("--generator", default=weights.DEFAULT_GENERATOR,
                        help="the generator drafting (default: the default one); a policy for another is not written")
    parser.add_argument("--adapter", default=backends.SHIPPED, help="generator adapter (default: the shipped one)")
    parser.add_argument("--hint", dest="hint", action="store_const", const=True, default=None,
                        help="show the generator the reader's span (default: only a model that cites with markers)")
    parser.add_argument("--no-hint", dest="hint", action="store_const", const=False,
                        help="draft without showing the generator the reader's span (the lever's ablation)")
    parser.add_argument("--refusal-bias", type=float, default=0.0, help="decoding lever: see rag.generate.decoding")
    parser.add_argument("--copy-only", action="store_true", help="decoding lever: see rag.generate.decoding")
    parser.add_argument("--context-guidance", type=float, default=1.0, help="decoding lever: see rag.generate.decoding")
    parser.add_argument("--cache", type=Path, help="keep the dev rows' documents and index here, reused next time")
    parser.add_argument("--drafts", type=Path,
                        help="keep the checked drafts here (a pickle): the grid is replayed from them next time "
                             "(drafted again when the settings differ)")
    parser.add_argument("--out", type=Path, help="write the grid as results.json here")
    parser.add_argument("--write", action="store_true",
                        help="write the best policy into the reader's reader.json (its \"policy\")")
    parser.add_argument("--agree", action="store_true",
                        help="let the chosen policy be `agree` (a supported sentence replaced by the reader's bare "
                             "span whenever they differ); the grid shows those rows either way")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.write and args.generator != weights.DEFAULT_GENERATOR:
        parser.error("--write records the default generator's policy; drop it for --generator")

    dataset = ev.load_halueval(args.data)
    todo = eg.items(dataset, 0.3, args.sample)
    checker = Remembered(verify.load())
    reader = Reader(args.reader)
    key = drafted_by(args, reader)
    outcomes = remembered(args.drafts, key) if args.drafts else None
    if outcomes is None:
        outcomes = draft(args, dataset, todo, checker, reader)
        if args.drafts:
            args.drafts.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(args.drafts) as tmp:
                tmp.write_bytes(pickle.dumps({"drafted_by": key, "outcomes": outcomes}))
    rows: list[dict[str, float | bool | None]] = []
    for keep, span, (agree, compare) in itertools.product(KEEP, SPAN, CONFLICT):
        policy = Policy(keep_margin=keep, span_margin=span, agree=agree, compare=compare)
        decided = [eg.Outcome(o.item, o.setting, decide(o.answer, checker, policy), o.gold_marker) for o in outcomes]
        scores = eg.score(decided)
        rows.append({"keep_margin": keep, "span_margin": span, "agree": agree, "compare": compare,
                     "utility": round(utility(scores), 4), **scores})
    rows.sort(key=lambda r: -float(r["utility"] or 0))
    best = next(r for r in rows if args.agree or not r["agree"])
    drafted = eg.score(outcomes)
    if args.write:
        spec = reader.path / SPEC
        record = json.loads(spec.read_text())
        record["policy"] = {k: best[k] for k in FIELDS}
        atomic_write_text(spec, json.dumps(record, indent=1) + "\n")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"drafts": drafted, "grid": rows}, indent=1) + "\n")
    if args.json:
        json.dump({"drafts": drafted, "best": best, "grid": rows}, sys.stdout, indent=1)
        print()
        return 0
    columns = ["utility", "answer_recall", "short_f1", "citation_accuracy", "wrong_abstention", "abstention",
               "hallucination"]
    print(f"{len(todo)} HaluEval dev questions; drafts without a decision: "
          + ", ".join(f"{c} {drafted[c]:.3f}" for c in columns[1:]))
    print("| keep_margin | span_margin | agree | compare | " + " | ".join(columns) + " |\n|---|---|---|---|"
          + "---|" * len(columns))
    for row in rows[:15]:
        print(f"| {row['keep_margin']} | {row['span_margin']} | {row['agree']} | {row['compare']} | "
              + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    print("best: Policy(" + ", ".join(f"{k}={best[k]}" for k in FIELDS) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
