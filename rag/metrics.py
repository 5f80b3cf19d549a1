"""Numbers every evaluation and training run reports: means, shares and percentiles that say
None on empty input rather than a misleading 0, binary-classification metrics (thin wrappers
over scikit-learn that accept plain lists and survive one-class inputs), and SQuAD's answer
normalisation, exact match and token F1.
A leaf module: training, evaluations and benchmarks all use it."""

from __future__ import annotations

import re
import statistics
import string
from collections import Counter
from collections.abc import Sequence


def mean(values: Sequence[float], digits: int = 4) -> float | None:
    return round(statistics.fmean(values), digits) if values else None


def share(flags: Sequence[bool], digits: int = 4) -> float | None:
    return round(sum(flags) / len(flags), digits) if flags else None


def percentile(values: Sequence[float | None], p: float, digits: int = 3) -> float | None:
    """The nearest-rank `p`th percentile of the values present (None where one is missing)."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    return round(present[min(len(present) - 1, round(p / 100 * (len(present) - 1)))], digits)


def balanced_accuracy(predicted: Sequence[bool], labels: Sequence[int]) -> float:
    """Mean of the recall on each class: 0.5 for a constant guess, whatever the class balance."""
    from sklearn.metrics import balanced_accuracy_score

    if len(set(labels)) < 2:
        return sum(int(p) == y for p, y in zip(predicted, labels, strict=True)) / max(1, len(labels))
    return float(balanced_accuracy_score(list(labels), [int(p) for p in predicted]))


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Chance that a supported example outscores an unsupported one (None with one class only)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(list(labels), list(scores))) if len(set(labels)) == 2 else None


def calibration(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> list[dict[str, float]]:
    """Per equal-width score bin: mean score, share of positives, count (empty bins left out)."""
    out = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(s, y) for s, y in zip(scores, labels, strict=True) if low <= s < high or (b == bins - 1 and s == 1)]
        if inside:
            out.append({"mean_score": sum(s for s, _ in inside) / len(inside),
                        "positive_share": sum(y for _, y in inside) / len(inside), "count": len(inside)})
    return out


def normalize(text: str) -> str:
    """SQuAD's answer normalization: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1 of the normalized answers (0 when they share no token)."""
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact(prediction: str, gold: str) -> float:
    """SQuAD's exact match: 1.0 when the normalized answers are equal."""
    return float(normalize(prediction) == normalize(gold))


def contains(prediction: str, gold: str) -> float:
    """Answer recall: 1.0 when the normalized answer holds the normalized gold answer as whole words
    (a sentence answer scores like its short answer here, where F1 would punish its other words)."""
    wanted = normalize(gold)
    return float(bool(wanted) and f" {wanted} " in f" {normalize(prediction)} ")
