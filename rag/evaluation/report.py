"""What every evaluation returns: a `Report`, written the same way whichever evaluation made it.

results.json is {"evaluation", "title", "config", "results", "created_at"}: `config` says what
was evaluated on what, `results` holds the figures (keyed by system, mode or verifier, then by
metric). results.md is the title, a note, the table and the plots; outcomes.jsonl holds one line
per question where the evaluation keeps them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rag.fsutil import atomic_write_text

RESULTS = "results.json"
OUTCOMES = "outcomes.jsonl"


class Progress(Protocol):
    """A progress bar (tqdm's): an evaluation sets its total once known, then counts."""

    def reset(self, total: float | None = None) -> None: ...

    def update(self, n: float | None = 1) -> bool | None: ...


@dataclass
class Report:
    evaluation: str  # retrieval, generator, answers or verifier
    title: str
    config: dict[str, Any]
    results: dict[str, Any]
    table: str  # the results as a Markdown table
    note: str = ""  # what was measured, in a sentence, under the title
    plots: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # PNG name -> draws it to a path
    outcomes: list[dict[str, Any]] | None = None  # None: none kept, or already written as the run went
    problems: list[str] = field(default_factory=list)  # input lines skipped, each naming its line and why

    def to_json(self) -> dict[str, Any]:
        return {"evaluation": self.evaluation, "title": self.title, "config": self.config, "results": self.results,
                "created_at": round(time.time(), 1)}

    def write(self, folder: Path) -> None:
        """results.json, results.md, the plots and (when held) outcomes.jsonl, each written atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / RESULTS, json.dumps(self.to_json(), indent=1, default=str) + "\n")
        for name, draw in self.plots.items():
            draw(folder / name)
        images = "".join(f"\n![{Path(name).stem}]({name})\n" for name in self.plots)
        note = f"{self.note}\n\n" if self.note else ""
        atomic_write_text(folder / "results.md", f"# {self.title}\n\n{note}{self.table}\n{images}")
        if self.outcomes is not None:
            atomic_write_text(folder / OUTCOMES, "".join(json.dumps(o, default=str) + "\n" for o in self.outcomes))


def config_json(config: Any) -> dict[str, Any]:
    """An evaluation's config dataclass as JSON: paths as strings."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
