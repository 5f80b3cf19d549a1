"""Evaluate verifiers side by side: the project's cross-encoder against two baselines, token
overlap and the generator used as a yes/no judge, on HaluEval dev rows and VitaminC.

Every verifier's threshold comes from the same HaluEval calibration rows (the trained one's
was set there by `rag train verifier`; the baselines get theirs here), so no threshold is
tuned on the data it is scored on. VitaminC is evaluation only: True is supported, False
and Neither are not. Hand-labelled claims (`--claims`, such as eval/command-claims.jsonl: real
corpus passages with a right and a wrong command for each task) are scored as datasets of their own.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag import metrics, verify
from rag.evaluation import plots
from rag.evaluation.report import Progress, Report, config_json
from rag.fsutil import read_jsonl
from rag.generate import backends
from rag.training import verifier as training
from rag.training.verifier import Pair
from rag.verify import Verifier, claim

JUDGE_SYSTEM = "You check facts. Reply with Yes or No only."


def vitaminc(path: Path, limit: int | None, seed: int = 0) -> list[Pair]:
    """A seeded sample of VitaminC ("Title: evidence\\nClaim: claim", True / False / Neither)."""
    examples = json.loads(Path(path).read_text())["examples"]
    out = []
    for n, example in enumerate(examples):
        evidence, sep, claim = example["input"].rpartition("\nClaim: ")
        if not sep:
            raise ValueError(f"{path}: example {n} has no 'Claim:' line")
        verdict = max(example["target_scores"], key=example["target_scores"].get)
        out.append(Pair(evidence.strip(), claim.strip(), int(verdict == "True"), "vitaminc"))
    return _sample(out, limit, seed)


def halueval(rows: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[Pair]:
    """HaluEval's own task on `rows`: knowledge with the right answer and with the hallucinated one."""
    return _sample(training.qa_pairs(rows), limit, seed)


def halueval_sentences(rows: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[Pair]:
    """The same task with the right answer written as a sentence ("The answer is X."), like the
    hallucinated one: a verifier that judged by form (short = right) fails here."""
    pairs = [Pair(r["knowledge"], claim(r["question"], text), label, kind) for r in rows
             for text, label, kind in ((f"The answer is {r['right_answer']}.", 1, "answer_sentence"),
                                       (r["hallucinated_answer"], 0, "hallucinated"))]
    return _sample(pairs, limit, seed)


def labelled(path: Path) -> list[Pair]:
    """Claims as the pipeline checks them (JSON lines: premise, hypothesis, label 1 supported / 0 not)."""
    rows = read_jsonl(path, ("premise", "hypothesis"))
    bad = next((n for n, r in enumerate(rows, 1) if r.get("label") not in (0, 1)), None)
    if bad:
        raise ValueError(f"{path}: claim {bad} has no label 0 or 1")
    return [Pair(r["premise"], r["hypothesis"], r["label"], path.stem) for r in rows]


def _sample(items: list[Pair], limit: int | None, seed: int) -> list[Pair]:
    return random.Random(seed).sample(items, limit) if limit and limit < len(items) else items


class JudgeVerifier:
    """Baseline: the generator asked whether the passage supports the claim; the score is its
    probability of "Yes" against "No"."""

    def __init__(self, generator: Any, threshold: float = 0.5) -> None:
        self.generator = generator
        self.name = f"judge ({generator.name})"
        self.threshold = threshold

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [self.generator.option_probabilities(_judge_messages(p, h), ("Yes", "No"))[0] for p, h in pairs]


def _judge_messages(premise: str, hypothesis: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": f"Passage: {premise}\n\nClaim: {hypothesis}\n\n"
                                        "Does the passage support the claim? Answer Yes or No."}]


def score(verifier: Verifier, items: list[Pair], threshold: float,
          progress: Callable[[int], object] | None = None, batch: int = 32) -> dict[str, Any]:
    """Balanced accuracy at `threshold`, ROC AUC, calibration bins, time per pair, and the scores."""
    verifier.scores([(i.premise, i.hypothesis) for i in items[:1]])  # loading the model is not time per pair
    start, found = time.perf_counter(), []
    for first in range(0, len(items), batch):
        chunk = items[first: first + batch]
        found += verifier.scores([(i.premise, i.hypothesis) for i in chunk])
        if progress:
            progress(len(chunk))
    labels = [i.label for i in items]
    return {"pairs": len(items), "supported_share": round(sum(labels) / max(1, len(labels)), 4),
            "threshold": round(threshold, 4),
            "balanced_accuracy": round(metrics.balanced_accuracy([s >= threshold for s in found], labels), 4),
            "roc_auc": _round(metrics.roc_auc(found, labels)),
            "ms_per_pair": round(1000 * (time.perf_counter() - start) / max(1, len(items)), 2),
            "calibration": metrics.calibration(found, labels), "scores": [round(s, 4) for s in found]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def evaluate(verifiers: dict[str, Verifier], calibration: list[Pair], datasets: dict[str, list[Pair]],
             calibrate: Collection[str] = (), progress: Callable[[int], object] | None = None
             ) -> dict[str, dict[str, dict[str, Any]]]:
    """results[verifier][dataset]. The verifiers named in `calibrate` (the baselines) get their
    threshold from `calibration` first; the others keep theirs (the trained one's, from training)."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, verifier in verifiers.items():
        threshold = verifier.threshold
        if name in calibrate:
            found = score(verifier, calibration, 0.5, progress)
            threshold = training.best_threshold(found["scores"], [i.label for i in calibration])
        results[name] = {data: score(verifier, items, threshold, progress) for data, items in datasets.items()}
    return results


def markdown_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["| verifier | dataset | pairs | balanced accuracy | ROC AUC | threshold | ms / pair |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, by_data in results.items():
        for data, r in by_data.items():
            auc = "n/a" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
            lines.append(f"| {name} | {data} | {r['pairs']} | {r['balanced_accuracy']:.3f} | {auc} | "
                         f"{r['threshold']:.3f} | {r['ms_per_pair']:.1f} |")
    return "\n".join(lines)


def calibration_plot(results: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """One reliability diagram per dataset: share supported against mean score, per verifier."""
    plt = plots.pyplot()
    datasets = list(next(iter(results.values())))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.5), squeeze=False)
    for ax, data in zip(axes[0], datasets, strict=True):
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
        for name, by_data in results.items():
            bins = by_data[data]["calibration"]
            ax.plot([b["mean_score"] for b in bins], [b["positive_share"] for b in bins], marker="o", label=name)
        ax.set(title=data, xlabel="mean score in bin", ylabel="share supported", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=8)
    plots.save(fig, path)


JUDGE = "SmolLM2-135M-Instruct"  # the yes/no judge baseline of docs/models.md (the smallest packaged generator)

@dataclass(frozen=True)
class VerifierEval:
    """`rag eval verifier`: the data, and which verifier and judge."""

    halueval: Path  # its last 1000 rows (dev) are scored, the 500 before calibrate the baselines
    vitaminc: Path | None = None
    limit: int = 1000  # pairs per dataset, drawn with a fixed seed
    calibration_limit: int = 400
    verifier: Path | None = None  # None: the shipped one
    judge: str = JUDGE  # a bare generator as a yes/no judge; "" for none
    claims: tuple[Path, ...] = ()  # labelled claim files, each scored whole as a dataset named by its stem


def run(config: VerifierEval, progress: Progress | None = None) -> Report:
    _, calibration_rows, dev_rows = training.split(config.halueval, training.VerifierConfig())
    calibration = halueval(calibration_rows, config.calibration_limit)
    datasets = {"halueval-dev": halueval(dev_rows, config.limit),
                "halueval-dev-sentences": halueval_sentences(dev_rows, config.limit)}
    if config.vitaminc:
        datasets["vitaminc"] = vitaminc(config.vitaminc, config.limit)
    datasets |= {path.stem: labelled(path) for path in config.claims}
    trained = verify.load(config.verifier)
    verifiers: dict[str, Verifier] = {trained.name: trained, f"{trained.name} (model only)": trained.inner,
                                      "token-overlap": verify.OverlapVerifier()}
    if config.judge:
        verifiers["judge"] = JudgeVerifier(backends.make(config.judge, adapter=None))
    baselines = [name for name in verifiers if name in ("token-overlap", "judge")]
    if progress is not None:
        progress.reset(len(verifiers) * sum(map(len, datasets.values())) + len(baselines) * len(calibration))
    scored = evaluate(verifiers, calibration, datasets, baselines, progress.update if progress else None)
    results = {name: {data: {k: v for k, v in r.items() if k != "scores"} for data, r in by_data.items()}
               for name, by_data in scored.items()}
    models = {k: v.name for k, v in verifiers.items()}
    return Report("verifier", "Verifiers", config_json(config) | {"models": models}, results, markdown_table(scored),
                  plots={"calibration.png": lambda path: calibration_plot(scored, path)})
