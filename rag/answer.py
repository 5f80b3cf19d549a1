"""Grounded drafts: retrieve, read, prompt, generate, then parse and check the cited sentences.

`Answerer.stream` yields the answer's text pieces (`Delta`) as the generator produces them and
finishes with the complete `Answer`; `ask` returns only the `Answer`. With a reader, the
reader's best spans are found first (in the whole chunks), each passage is cut around its
span, the best span is shown as evidence to a generator that cites with markers, and every sentence's citation is
corrected to the passage holding its answer string. Without a generator, the answer is the
reader's best span itself (extractive). A draft stops where its `DraftGate` says so (before
reading, before generating, after generating), with the gate's reason recorded; the gates, the
reasons and whether to answer in the end are `rag.decision`'s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

from rag import threads
from rag.generate import citations as cites
from rag.generate import excerpt, prompt
from rag.generate.backends import Generator, Sampling
from rag.reader import Span, SpanReader, best_per_passage
from rag.retrieve import Hit, Retriever

READER = "reader"  # Answer.answered_by: the reader's span is the answer
GENERATOR = "generator"  # Answer.answered_by: the generator wrote the answer


@dataclass(frozen=True)
class Evidence:
    """A span the reader found in a passage shown to the generator (see rag.reader.Span)."""

    marker: int  # the passage's marker
    text: str
    start: int  # character offsets into the file's extracted text
    end: int
    score: float
    no_answer: float
    margin: float  # score - no_answer: positive when the reader believes the span over "nothing here"


@dataclass(frozen=True)
class AnswerConfig:
    k: int = 5  # passages shown to the model
    # Each passage is cut to its most relevant sentences within this many characters (None: whole
    # chunks). 400 keeps the answer of 91% of SQuAD questions in their gold paragraph and holds
    # the default model's first token under 1.5 s on two cores (benchmarks/answer.py).
    passage_chars: int | None = 400
    sampling: Sampling = field(default_factory=Sampling)
    # Show the generator the reader's best span ("Evidence: passage [2] says ..."). None: only to a model
    # that cites with markers (the SmolLM2 adapter learnt its prompt with it); a plain-sentence model
    # took the hinted span over the right one (the $50.00 fee for $75.00, the threshold for the APY:
    # docs/models.md, 2026-12-05).
    evidence_hint: bool | None = None
    # Threads for retrieval and reading (one is fastest for a single query on two shared cores,
    # benchmarks/search.py) and for generation (None: every core; a long prompt's prefill wants them).
    search_threads: int = 1
    generate_threads: int | None = None


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
    evidence: list[Evidence] = field(default_factory=list)  # the reader's best spans, best first
    answered_by: str | None = None  # GENERATOR or READER; None when it abstained
    draft: str | None = None  # the generator's text, when the final answer is not it (rag.decision)
    asked: str | None = None  # the user's words, when a follow-up was rewritten as `question` (rag.conversation)
    # The shortest span that answers (rag.decision.short_answer): the reader's span inside the answer,
    # for SQuAD-style scoring and for the UI to bold; None for an abstention, or before the decision.
    short: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def closest(self, n: int = 3) -> list[Hit]:
        """The `n` best passages, for a user to read under an abstention: the ones shown to the model,
        or, when none was shown (retrieval too weak, or nothing fit the window), the ones left out."""
        return (self.retrieved or self.dropped)[:n]


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text: from `Answerer.stream`, the draft's as the generator writes it;
    from `rag.pipeline.Pipeline.stream`, only text the final answer holds, in order."""

    text: str


@dataclass(frozen=True)
class Drafting:
    """From `Answerer.stream`, just before the generator's first piece: the question and the
    passages the draft is written from, so that its sentences can be checked as they come
    (rag.pipeline). `Pipeline.stream` passes none on."""

    question: str
    passages: list[Hit]  # marker n is passages[n - 1]
    evidence: list[Evidence] = field(default_factory=list)  # the reader's spans in those passages, best first


Event = Delta | Answer  # what a stream yields: text pieces, then the final Answer (always last)
Draft = Delta | Drafting | Answer  # what `Answerer.stream` yields


class DraftGate(Protocol):
    """Where a draft stops (rag.decision.Gate): each check returns the reason to abstain, or None."""

    def relevance(self, hits: list[Hit]) -> str | None: ...  # before reading

    def reading(self, spans: list[Span]) -> str | None: ...  # with a reader, before generating

    def draft(self, text: str) -> str | None: ...  # after generating (or taking the reader's span)


class Answerer:
    """Drafts answers from the passages `retriever` finds, with `generator` (None: the reader's
    span is the answer) and, optionally, the `reader`'s evidence, stopping where `gate` says
    (None: never; every text, a refusal too, is the answer)."""

    def __init__(self, retriever: Retriever, generator: Generator | None, config: AnswerConfig | None = None,
                 reader: SpanReader | None = None, gate: DraftGate | None = None) -> None:
        if generator is None and reader is None:
            raise ValueError("an Answerer needs a generator, a reader, or both")
        self.retriever = retriever
        self.generator = generator
        self.config = config or AnswerConfig()
        self.reader = reader
        self.gate = gate

    @property
    def name(self) -> str:
        """The generator's name (the reader's when it answers alone)."""
        return self.generator.name if self.generator else self.reader.name  # type: ignore[union-attr]

    @property
    def _hint(self) -> bool:
        """Whether the generator is shown the reader's span (AnswerConfig.evidence_hint)."""
        hint = self.config.evidence_hint
        return bool(self.generator and self.generator.markers) if hint is None else hint

    def ask(self, question: str) -> Answer:
        return final(self.stream(question))

    def ask_over(self, question: str, hits: list[Hit], gate: bool = True) -> Answer:
        """`ask` over passages found elsewhere (see `stream_over`)."""
        return final(self.stream_over(question, hits, gate=gate))

    def stream(self, question: str) -> Iterator[Draft]:
        """Text pieces of the answer (after a `Drafting` when a generator writes it), then the
        finished Answer."""
        if not question.strip():
            raise ValueError("the question is empty")
        start = time.perf_counter()
        threads.use(self.config.search_threads)
        hits = self.retriever.search(question, self.config.k)
        yield from self.stream_over(question, hits, start)

    def stream_over(self, question: str, hits: list[Hit], start: float | None = None,
                    gate: bool = True) -> Iterator[Draft]:
        """`stream` over passages found elsewhere (an evaluation's gold passages, say): stop if
        `gate` and the relevance gate says so, else read, prompt, generate and parse. `start`: when
        retrieval began, for the timings."""
        start = time.perf_counter() if start is None else start
        timings = {"retrieve_s": time.perf_counter() - start}
        if gate and self.gate and (reason := self.gate.relevance(hits)):
            yield Delta(prompt.ABSTAIN)
            yield self._finish(question, prompt.ABSTAIN, reason, prompt.Prompt([], [], hits, 0), [], timings, start)
            return
        spans = self._read(question, hits, timings)
        shown = self._narrow(question, hits, spans)
        evidence = [_evidence(s, hits[s.passage]) for s in spans]
        if self.reader is not None and self.gate and (reason := self.gate.reading(spans)):
            yield Delta(prompt.ABSTAIN)
            yield self._finish(question, prompt.ABSTAIN, reason, prompt.Prompt([], shown, [], 0), evidence,
                               timings, start)
            return
        if self.generator is None:
            text = f"{evidence[0].text} [{evidence[0].marker}]." if evidence else prompt.ABSTAIN
            timings["first_token_s"] = time.perf_counter() - start
            yield Delta(text)
            built = prompt.Prompt([], shown, [], 0)
        else:
            hint = prompt.Hint(spans[0].passage, spans[0].text) if spans and self._hint else None
            budget = self.generator.context_tokens - self.config.sampling.max_new_tokens
            built = prompt.build(question, shown, self.generator.count_tokens, budget, hint, self.generator.markers)
            threads.use(self.config.generate_threads or threads.available())
            yield Drafting(question, built.passages, [e for e in evidence if e.marker <= len(built.passages)])
            pieces = []
            for piece in self.generator.stream(built.messages, self.config.sampling):
                timings.setdefault("first_token_s", time.perf_counter() - start)
                pieces.append(piece)
                yield Delta(piece)
            text = "".join(pieces).strip()
        reason = self.gate.draft(text) if self.gate else None
        yield self._finish(question, text, reason, built, evidence, timings, start)

    def _read(self, question: str, hits: list[Hit], timings: dict[str, float]) -> list[Span]:
        """The reader's best spans over the whole chunks (one per passage at most), best first."""
        if self.reader is None:
            return []
        began = time.perf_counter()
        threads.use(self.config.search_threads)
        spans = self.reader.read_hits(question, hits, top=len(hits))
        timings["read_s"] = time.perf_counter() - began
        return best_per_passage(spans)

    def _narrow(self, question: str, hits: list[Hit], spans: list[Span]) -> list[Hit]:
        """Each passage cut to its most relevant sentences, keeping the reader's span in it."""
        if not self.config.passage_chars:
            return hits
        around = {s.passage: (s.start, s.end) for s in spans}
        return [excerpt.narrow(question, h, self.config.passage_chars, around.get(n)) for n, h in enumerate(hits)]

    def _finish(self, question: str, text: str, reason: str | None, built: prompt.Prompt, evidence: list[Evidence],
                timings: dict[str, float], start: float) -> Answer:
        parsed = cites.parse(text, built.passages) if reason is None else cites.Parsed([], [], 0)
        evidence = [e for e in evidence if e.marker <= len(built.passages)]  # not of a passage left out to fit
        if evidence:
            parsed = cites.correct(parsed, built.passages, [(e.marker, e.text) for e in evidence])
        timings["total_s"] = time.perf_counter() - start
        timings.setdefault("first_token_s", timings["total_s"])
        by = None if reason else (GENERATOR if self.generator else READER)
        return Answer(question, text, reason is not None, reason, parsed.sentences, parsed.citations,
                      built.passages, built.dropped, parsed.invalid_markers, self.name, built.tokens,
                      {k: round(v, 3) for k, v in timings.items()}, evidence=evidence, answered_by=by)


def _evidence(span: Span, whole: Hit) -> Evidence:
    """`span` (offsets into the whole chunk `whole`) as evidence with file offsets."""
    return Evidence(span.passage + 1, span.text, whole.start + span.start, whole.start + span.end,
                    round(span.score, 4), round(span.no_answer, 4), round(span.margin, 4))


def final(items: Iterator[Draft]) -> Answer:
    """The Answer that ends a stream."""
    *_, answer = items
    assert isinstance(answer, Answer)
    return answer
