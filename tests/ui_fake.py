"""A fake `Service` for the web UI's AppTest tests: scripted answers, a real corpus folder, no models.

The app loads it through $RAG_UI_SERVICE=tests.ui_fake:make; $RAG_UI_FAKE_CORPUS is the folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from rag import decision, uploads, verify
from rag import service as services
from rag.answer import Answer, Delta, Event
from rag.decision import READER_NO_ANSWER
from rag.generate.prompt import ABSTAIN
from rag.ingest.work import IngestReport
from tests.test_verify import PASSAGES, KeywordVerifier, answer, hit


class FakeService:
    def __init__(self, corpus: Path) -> None:
        self.corpus = corpus
        self.asked: list[tuple[str, services.AskOptions]] = []
        self.rebuilds = 0
        self.indexed: set[str] = set()

    def ask(self, question: str, settings: services.AskOptions) -> Iterator[Event]:
        self.asked.append((question, settings))
        if "unknown" in question:
            yield Delta(ABSTAIN)
            yield Answer(question, ABSTAIN, True, READER_NO_ANSWER, [], [], [hit(1, PASSAGES[0]), hit(2, PASSAGES[1])],
                         [], 0, "fake", 0, {})
            return
        text = "Bees live in hives [1]. Ants live in nests [3]. <b>Bold</b> [2]."
        for word in text.split(" "):
            yield Delta(word + " ")
        checked = verify.check(answer(text, PASSAGES), KeywordVerifier())
        yield decision.only_supported(checked) if settings.strict else checked

    def files(self) -> list[services.FileRow]:
        rows = [services.FileRow("broken.pdf", "failed", 0, None, "encrypted PDF")]
        for path in sorted(self.corpus.rglob("*")):
            if path.is_file():
                name = str(path.relative_to(self.corpus))
                done = name in self.indexed
                rows.append(services.FileRow(name, "indexed" if done else "not indexed", 2 * done,
                                             1.7e9 if done else None))
        return rows

    def upload(self, name: str, data: bytes) -> Path:
        return uploads.save(self.corpus, name, data, max_bytes=1000)

    def remove(self, relative: str) -> None:
        (self.corpus / relative).unlink()

    def rebuild(self, progress: services.Progress) -> IngestReport:
        self.rebuilds += 1
        files = [str(p.relative_to(self.corpus)) for p in self.corpus.rglob("*") if p.is_file()]
        for n, _ in enumerate(files, 1):
            progress(n, len(files))
        added = [f for f in files if f not in self.indexed]
        removed = [f for f in self.indexed if f not in files]
        self.indexed = set(files)
        return IngestReport(added=added, removed=removed)

    def context(self, source: str, start: int, end: int, page: int | None) -> tuple[str, int, int]:
        return f"before. {PASSAGES[0]} after.", 8 + start, 8 + end

    def evaluate(self, dataset: Path, progress: services.Progress) -> services.EvalResult:
        for n in range(1, 4):
            progress(n, 3)
        return services.EvalResult({"questions": 3, "faithfulness": 0.75, "f1": 0.5, "abstention": None},
                                   None, ["q.jsonl: line 2 is not JSON"])

    def evaluate_retrieval(self, dataset: Path, progress: services.Progress) -> services.EvalResult:
        progress(1, 1)
        return services.EvalResult({"hybrid answer_in_top_5": 1.0, "hybrid latency_p50_ms": 20.5})


MADE: list[FakeService] = []  # every service the app asked for, so a test can look inside


def make() -> FakeService:
    MADE.append(FakeService(Path(os.environ["RAG_UI_FAKE_CORPUS"])))
    return MADE[-1]
