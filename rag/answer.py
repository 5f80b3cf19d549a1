"""Grounded answers: retrieve, prompt, generate, then parse the cited sentences.

`Answerer.stream` yields the answer's text pieces as the generator produces them and
finishes with the complete `Answer`; `ask` returns only the `Answer`. An answer abstains,
with the reason recorded, when retrieval finds nothing relevant enough or when the model
gives the fixed abstention sentence.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from rag.generate import citations as cites
from rag.generate import excerpt, prompt
from rag.generate.backends import Generator, Sampling
from rag.index import Index
from rag.retrieve import Hit

# Best-passage cosine below which no passage is taken to be relevant, per embedder, calibrated by
# benchmarks/abstention.py on HaluEval dev rows: keeps 97% of answerable questions, stops 48% of others.
ABSTAIN_BELOW = {"all-MiniLM-L6-v2": 0.377}
NO_PASSAGES = "no_relevant_passages"  # retrieval found nothing above the relevance threshold
MODEL_ABSTAINED = "model_abstained"  # the model said the passages do not answer the question


@dataclass(frozen=True)
class AnswerConfig:
    k: int = 5  # passages shown to the model
    mode: str = "hybrid"
    rerank: bool = False
    # Abstain without generating when the best passage's cosine is below this; None: the calibrated
    # value for the index's embedder (ABSTAIN_BELOW), or no threshold for an uncalibrated one.
    min_dense_score: float | None = None
    # Each passage is cut to its most relevant sentences within this many characters (None: whole
    # chunks). 400 keeps the answer of 91% of SQuAD questions in their gold paragraph and holds
    # the default model's first token under 1.5 s on two cores (benchmarks/answer.py).
    passage_chars: int | None = 400
    sampling: Sampling = field(default_factory=Sampling)


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    abstained: bool
    abstain_reason: str | None
    sentences: list[cites.Sentence]
    citations: list[cites.Citation]
    retrieved: list[Hit]  # the passages shown to the model, marker n = retrieved[n - 1]
    dropped: list[Hit]  # retrieved but not shown: left out to fit the context window, or all of them
    # when retrieval was too weak to generate from (abstain_reason no_relevant_passages)
    invalid_markers: int
    model: str
    prompt_tokens: int  # 0 when nothing was generated
    timings: dict[str, float]
    faithfulness: float | None = None  # share of sentences a shown passage supports, once verified (rag.verify)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class Answerer:
    def __init__(self, index: Index, generator: Generator, config: AnswerConfig | None = None) -> None:
        self.index = index
        self.generator = generator
        self.config = config or AnswerConfig()

    def ask(self, question: str) -> Answer:
        return _final(self.stream(question))

    def ask_over(self, question: str, hits: list[Hit], gate: bool = True) -> Answer:
        """`ask` over passages found elsewhere (see `stream_over`)."""
        return _final(self.stream_over(question, hits, gate=gate))

    def stream(self, question: str) -> Iterator[str | Answer]:
        """Text pieces of the answer, then the finished Answer."""
        if not question.strip():
            raise ValueError("the question is empty")
        start = time.perf_counter()
        hits = self.index.search(question, self.config.k, self.config.mode, rerank=self.config.rerank)
        yield from self.stream_over(question, hits, start)

    def stream_over(self, question: str, hits: list[Hit], start: float | None = None,
                    gate: bool = True) -> Iterator[str | Answer]:
        """`stream` over passages found elsewhere (an evaluation's gold passages, say): abstain if
        `gate` and none is relevant enough, else prompt, generate and parse. `start`: when
        retrieval began, for the timings."""
        start = time.perf_counter() if start is None else start
        timings = {"retrieve_s": time.perf_counter() - start}
        if gate and not self._relevant(hits):
            yield prompt.ABSTAIN
            yield self._finish(question, prompt.ABSTAIN, NO_PASSAGES, prompt.Prompt([], [], hits, 0), timings, start)
            return
        if self.config.passage_chars:
            hits = [excerpt.narrow(question, h, self.config.passage_chars) for h in hits]
        budget = self.generator.context_tokens - self.config.sampling.max_new_tokens
        built = prompt.build(question, hits, self.generator.count_tokens, budget)
        pieces = []
        for piece in self.generator.stream(built.messages, self.config.sampling):
            timings.setdefault("first_token_s", time.perf_counter() - start)
            pieces.append(piece)
            yield piece
        text = "".join(pieces).strip()
        reason = MODEL_ABSTAINED if _is_abstention(text) else None
        yield self._finish(question, text, reason, built, timings, start)

    def _relevant(self, hits: list[Hit]) -> bool:
        threshold = self.config.min_dense_score
        if threshold is None:
            threshold = ABSTAIN_BELOW.get(self.index.snapshot().meta.embedder)
        if not hits:
            return False
        if threshold is None:
            return True
        return max((h.dense_score for h in hits if h.dense_score is not None), default=-1.0) >= threshold

    def _finish(self, question: str, text: str, reason: str | None, built: prompt.Prompt,
                timings: dict[str, float], start: float) -> Answer:
        parsed = cites.parse(text, built.passages) if reason is None else cites.Parsed([], [], 0)
        timings["total_s"] = time.perf_counter() - start
        timings.setdefault("first_token_s", timings["total_s"])
        return Answer(question, text, reason is not None, reason, parsed.sentences, parsed.citations,
                      built.passages, built.dropped, parsed.invalid_markers, self.generator.name, built.tokens,
                      {k: round(v, 3) for k, v in timings.items()})


def _is_abstention(text: str) -> bool:
    """The model's answer is the abstention sentence (markers, case and punctuation aside)."""
    def norm(s: str) -> str:
        return " ".join(cites.MARKER.sub(" ", s).lower().replace(".", " ").split())

    return norm(text).startswith(norm(prompt.ABSTAIN)) or not norm(text)


def _final(items: Iterator[str | Answer]) -> Answer:
    """The Answer that ends a stream."""
    *_, answer = items
    assert isinstance(answer, Answer)
    return answer
