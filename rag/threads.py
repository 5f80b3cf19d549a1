"""Thread counts for torch and FAISS, chosen per kind of work.

On small shared machines one thread answers a single query faster than two
(less synchronisation), while bulk embedding gains from every core.
"""

from __future__ import annotations

import os
import sys


def available() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_chosen: int | None = None


def use(n: int) -> None:
    """Set torch's and FAISS's intra-op thread counts (only for libraries already imported), and
    the count ONNX Runtime sessions are made with (`chosen`)."""
    global _chosen
    _chosen = n
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)


def chosen() -> int:
    """The count last passed to `use`, else every available core."""
    return _chosen or available()
