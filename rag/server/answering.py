"""One question answered on the answering queue, awaited by the request that asked it.

The answer is made whole before anything of it is sent: the pipeline's draft may be replaced by
its decision (the reader's span, or an abstention), and a caller must never be streamed text
that is later taken back. A caller that goes away cancels its question (dropped if still
waiting, stopped between two generated pieces if running: the question's generator is wrapped
in `Cancellable`, as with a reader the pipeline yields nothing until the draft is generated and
checked), and the worker moves on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Request

from rag.answer import Answer, AnswerConfig
from rag.conversation import Turn
from rag.generate.backends import Generator, GeneratorError, Messages, Sampling
from rag.generate.prompt import QuestionTooLong
from rag.server.collections import Collection
from rag.server.errors import ApiError
from rag.server.limits import AnswerQueue
from rag.server.metrics import Metrics
from rag.server.payloads import Served

CLIENT_GONE = 499  # the caller closed the connection before its answer was ready (as nginx logs it)
MAX_TURNS = 50  # of a conversation, the latest kept (a follow-up refers to the last few)
DISCONNECT_POLL = 0.5  # seconds between two looks at whether a waiting caller is still there


@dataclass(frozen=True)
class Question:
    text: str
    history: tuple[Turn, ...] = ()  # the conversation before it: a follow-up is answered as the question it stands for
    k: int = AnswerConfig.k
    mode: str = "hybrid"
    strict: bool | None = None  # None: the server's setting
    field: str = "question"  # the request's field that holds it, named by a 422


class Cancelled(Exception):
    """The caller went away while its answer was being made."""


class Cancellable:
    """The shared generator as one question uses it: its stream raises Cancelled between two pieces once
    the caller has gone. Checking only between the pipeline's events is not enough: with a reader (as
    `rag serve` always has) the pipeline yields nothing until the whole draft is generated and checked."""

    def __init__(self, inner: Generator, cancelled: threading.Event) -> None:
        self.inner = inner
        self.cancelled = cancelled
        self.name = inner.name
        self.markers = inner.markers

    @property
    def context_tokens(self) -> int:
        return self.inner.context_tokens

    def count_tokens(self, messages: Messages) -> int:
        return self.inner.count_tokens(messages)

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        self._check()
        pieces = self.inner.stream(messages, sampling)
        try:
            for piece in pieces:
                self._check()
                yield piece
        finally:
            if hasattr(pieces, "close"):  # a generator: closing it ends the inner generation too
                pieces.close()

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled


def make(collection: Collection, question: Question, cancelled: threading.Event) -> Served:
    """Run the pipeline to its final answer (on the answering worker)."""
    shared = collection.models.generator
    generator = Cancellable(shared, cancelled) if shared is not None else None
    pipeline = collection.pipeline(question.k, question.mode, question.strict, generator)
    answer: Answer | None = None
    try:
        for event in pipeline.stream(question.text, question.history):
            if cancelled.is_set():
                raise Cancelled
            if isinstance(event, Answer):
                answer = event
    except QuestionTooLong as exc:  # within the character limit, or written out from a conversation, yet too long
        raise ApiError(422, f"{question.field}: {exc}", question.field) from exc
    except GeneratorError as exc:
        raise ApiError(503, f"the generator failed: {exc}", code="generator_error", retry_after=5) from exc
    except (ApiError, Cancelled):
        raise
    except Exception as exc:  # told to this caller, about its own collection; the worker goes on
        raise ApiError(500, f"answering failed: {type(exc).__name__}: {exc}") from exc
    assert answer is not None
    return Served(answer, completion_tokens(collection.models.generator, answer.answer))


def completion_tokens(generator: Generator | None, text: str) -> int:
    """The answer's length in the generator's tokens (its chat template's overhead taken off)."""
    if generator is None or not text:
        return 0
    def count(content: str) -> int:
        return generator.count_tokens([{"role": "assistant", "content": content}])

    return max(0, count(text) - count(""))


class Pending:
    """A question on the answering queue; `result()` awaits it, `cancel()` gives it up."""

    def __init__(self, queue: AnswerQueue, metrics: Metrics, collection: Collection, question: Question,
                 key_id: str | None) -> None:
        self.cancelled = threading.Event()
        self.metrics = metrics
        # 429 now if the key (None: a key-less server) has its share in flight, 503 if the queue is full
        self.future = queue.submit(lambda: make(collection, question, self.cancelled), key_id)
        self.waiting = asyncio.wrap_future(self.future)

    async def result(self) -> Served:
        try:
            served = await asyncio.shield(self.waiting)
        except asyncio.CancelledError:
            self.cancel()
            raise
        self.metrics.answered(served.answer.abstain_reason)
        return served

    async def result_for(self, request: Request) -> Served | None:
        """The answer, or None if the caller went away meanwhile (its question is then given up)."""
        while not await self.wait(DISCONNECT_POLL):
            if await request.is_disconnected():
                self.cancel()
                return None
        return await self.result()

    async def wait(self, seconds: float) -> bool:
        """Whether the answer is ready within `seconds` (a stream sends a keep-alive in between)."""
        done, _ = await asyncio.wait({self.waiting}, timeout=seconds)
        return bool(done)

    def cancel(self) -> None:
        self.cancelled.set()
        self.future.cancel()
