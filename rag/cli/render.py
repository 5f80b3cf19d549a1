"""What commands show on the terminal: hits, answers and ingest reports as text or JSON, the
interactive prompt, and the exit statuses."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag.answer import Answer, Delta, Event
from rag.decision import REASONS
from rag.generate.citations import Citation
from rag.ingest.work import IngestReport
from rag.retrieve import Hit

EXIT_OK, EXIT_FILES_FAILED, EXIT_ERROR = 0, 1, 2


def display_path(path: str) -> str:
    """Paths under the working folder are shown relative to it, others in full."""
    try:
        return os.path.relpath(path) if Path(path).is_relative_to(Path.cwd()) else path
    except ValueError:
        return path


def print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=1)
    print()


def prompt_loop(prompt: str, handle: Callable[[str], object]) -> int:
    """Read lines and hand each to `handle` until an empty line or end of input."""
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            print()
            return EXIT_OK
        if not line:
            return EXIT_OK
        handle(line)


def report_json(report: IngestReport) -> dict[str, Any]:
    out = asdict(report)
    for key in ("added", "updated", "removed"):
        out[key] = [display_path(p) for p in out[key]]
    out["failed"] = [{"path": display_path(f["path"]), "error": f["error"]} for f in out["failed"]]
    return out


def print_report(report: IngestReport, index: str) -> None:
    where = f"{index} ({report.snapshot})" if report.snapshot else f"{index} (no changes)"
    rate = report.chunks_embedded / report.seconds if report.seconds else 0.0
    print(f"indexed into {where}: {len(report.added)} added, {len(report.updated)} updated, "
          f"{len(report.removed)} removed, {report.unchanged} unchanged, {len(report.failed)} failed; "
          f"{report.chunks_total} chunks ({report.chunks_embedded} embedded) in {report.seconds:.1f} s "
          f"({rate:.1f} chunks/s)")
    for failure in report.failed:
        print(f"  FAILED {display_path(failure['path'])}: {failure['error']}", file=sys.stderr)


def hit_json(hit: Hit | Citation) -> dict[str, Any]:
    out = asdict(hit)
    out["source"] = display_path(hit.source)
    return out


def show_hits(hits: list[Hit], as_json: bool) -> None:
    if as_json:
        print_json([hit_json(h) for h in hits])
        return
    if not hits:
        print("no results (the index is empty)")
    for hit in hits:
        where = display_path(hit.source) + (f" p.{hit.page}" if hit.page else "")
        heading = f"  [{hit.heading}]" if hit.heading else ""
        ranks = (("dense", hit.dense_rank), ("bm25", hit.bm25_rank), ("before rerank", hit.first_rank))
        why = " ".join(f"{m} #{r}" for m, r in ranks if r)
        snippet = " ".join(hit.text.split())
        more = "…" if len(snippet) > 300 else ""
        print(f"{hit.rank:>2}. {hit.score:.3f}  {where}{heading}  ({why})\n    {snippet[:300]}{more}")


def show_answer(stream: Iterator[Event], as_json: bool) -> None:
    """Stream the answer to the terminal and list its sources, or print it as one JSON object. The
    stream holds only the final answer's text (rag.pipeline); a draft it replaced follows, labelled."""
    for event in stream:
        match event:
            case Delta(text=text) if not as_json:
                print(text, end="", flush=True)
            case Answer():
                answer = event
    if as_json:
        print_json(answer.to_json() | {"retrieved": [hit_json(h) for h in answer.retrieved],
                                       "dropped": [hit_json(h) for h in answer.dropped],
                                       "citations": [hit_json(c) for c in answer.citations]})
        return
    print()
    reason = f"abstained, {answer.abstain_reason}: {REASONS.get(answer.abstain_reason or '', '')}"
    if answer.draft is not None:
        why = reason if answer.abstained else "the reader's answer: its span's sentence, cited to its passage"
        print(f"  ({why}; the generator's draft, not the answer: \"{' '.join(answer.draft.split())}\")")
    for c in answer.citations:
        where = display_path(c.source) + (f" p.{c.page}" if c.page else "")
        print(f"  [{c.marker}] {where}: \"{' '.join(c.quote.split())}\"")
    if answer.abstained:
        if answer.draft is None:
            print(f"  ({reason})")
        show_closest(answer)
    elif answer.faithfulness is not None:
        for sentence in answer.sentences:
            moved = f", cited [{sentence.citations[0]}] not {sentence.cited_as}" if sentence.citation_corrected else ""
            lacks = f"; the passage lacks {', '.join(sentence.missing)}" if sentence.missing else ""
            print(f"  {sentence.verdict} ({sentence.support:.2f}{moved}{lacks}): {sentence.text}")
        print(f"  faithfulness {answer.faithfulness:.2f}")


def show_closest(answer: Answer) -> None:
    """Under an abstention, the passages that came closest (Answer.closest), so the user can read them."""
    hits = answer.closest()
    if hits:
        print("  closest passages:")
    for hit in hits:
        where = display_path(hit.source) + (f" p.{hit.page}" if hit.page else "")
        snippet = " ".join(hit.text.split())
        print(f"  {hit.rank}. {where}: {snippet[:200]}{'…' if len(snippet) > 200 else ''}")
