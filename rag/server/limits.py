"""What keeps one caller, or too many, from starving the rest: a token bucket per key (429 with
Retry-After), one answering worker with a bounded queue in front of it (503 with Retry-After when
full, never a hang: the models answer one question at a time, and two at once would each take
twice as long on a small machine), a cap on one key's share of that queue (429), and a cap on
request bodies (413)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from rag.server.errors import ApiError
from rag.server.keys import Rate

T = TypeVar("T")
PER_KEY = 2
"""Answers one key may have waiting or being answered at once. The queue is shared: without this cap one key
asking many questions at once would fill it and every other key would get 503. Two, not one, so that a
caller may send its next question while its last is answered; a constant, not a setting, as nobody has yet
needed another value. A key-less server (loopback only, one operator) has no cap: its callers all share
one address, so a cap per address would only shrink the queue."""


class RateLimiter:
    """A token bucket per key id: `rate.count` requests at once, refilled evenly over `rate.per_seconds`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when)
        self.lock = threading.Lock()

    def take(self, key_id: str, rate: Rate) -> None:
        """Spend one token of `key_id`'s bucket, or raise 429 saying when one will be there."""
        per_token = rate.per_seconds / rate.count
        with self.lock:
            now = self.clock()
            tokens, then = self.buckets.get(key_id, (float(rate.count), now))
            tokens = min(float(rate.count), tokens + (now - then) / per_token)
            if tokens < 1:
                self.buckets[key_id] = (tokens, now)
                wait = max(1, math.ceil((1 - tokens) * per_token))
                raise ApiError(429, f"rate limit of this key ({rate}) reached; retry in {wait} s", retry_after=wait)
            self.buckets[key_id] = (tokens - 1, now)


class QueueFull(ApiError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(503, f"the answering queue is full; retry in {retry_after} s", code="queue_full",
                         retry_after=retry_after)


class KeyBusy(ApiError):
    def __init__(self, held: int, retry_after: int) -> None:
        super().__init__(429, f"this key already has {held} questions waiting or being answered; retry in "
                         f"{retry_after} s", code="too_many_questions", retry_after=retry_after)


class AnswerQueue:
    """One worker thread running answers in turn; at most `waiting` more may wait for it, and at most
    `per_key` of all those of one key."""

    def __init__(self, waiting: int, on_depth: Callable[[int], None] = lambda depth: None,
                 per_key: int = PER_KEY) -> None:
        self.capacity = waiting + 1  # the one being answered, and those waiting
        self.per_key = per_key
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-answer")
        self.lock = threading.Lock()
        self.in_flight = 0
        self.by_key: dict[str, int] = {}  # key id -> its answers in flight
        self.seconds = 5.0  # a running estimate of one answer's time, for Retry-After
        self.on_depth = on_depth

    def submit(self, job: Callable[[], T], key_id: str | None = None) -> Future[T]:
        """Queue `job` of `key_id` (None: a key-less server, no cap per key), or raise KeyBusy (429) or
        QueueFull (503). Cancelling the future of a job still waiting drops it."""
        with self.lock:
            wait = max(1, math.ceil(self.seconds * self.in_flight))  # until every answer now in flight is done
            held = self.by_key.get(key_id, 0) if key_id is not None else 0
            if held >= self.per_key:
                raise KeyBusy(held, wait)
            if self.in_flight >= self.capacity:
                raise QueueFull(wait)
            self.in_flight += 1
            if key_id is not None:
                self.by_key[key_id] = held + 1
            self.on_depth(self.in_flight)
        future = self.pool.submit(self._timed, job)
        future.add_done_callback(lambda _: self._done(key_id))
        return future

    def _timed(self, job: Callable[[], T]) -> T:
        began = time.monotonic()
        try:
            return job()
        finally:
            self.seconds = 0.8 * self.seconds + 0.2 * (time.monotonic() - began)

    def _done(self, key_id: str | None) -> None:
        with self.lock:
            self.in_flight -= 1
            if key_id is not None:
                self.by_key[key_id] -= 1
                if not self.by_key[key_id]:
                    del self.by_key[key_id]
            self.on_depth(self.in_flight)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413, by its Content-Length before the
    route runs, or, when none is sent, as it arrives (raised inside the route, where the app's ApiError
    handler answers it)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def error(self) -> ApiError:
        return ApiError(413, f"the request body is over the limit of {self.max_bytes} bytes", "body")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self.error().response()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self.error()
            return message

        await self.app(scope, counted, send)

