"""Figures for evaluation reports: matplotlib without a display, saved atomically as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.fsutil import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend (no display on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> None:
    """Write `fig` to `path` (never half a file) and free it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)
