"""Binary-classification metrics shared by the verifier's training (threshold) and evaluations.
Thin wrappers over scikit-learn that accept plain lists and survive one-class inputs."""

from __future__ import annotations

from collections.abc import Sequence


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
