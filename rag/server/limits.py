"""What keeps one caller, or too many, from starving the rest: a token bucket per key (429 with
Retry-After), one answering worker with a bounded queue in front of it (503 with Retry-After when
full, never a hang: the models answer one question at a time, and two at once would each take
twice as long on a small machine), and a cap on request bodies (413)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from rag.server.errors import ApiError
from rag.server.keys import Rate

T = TypeVar("T")


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


class AnswerQueue:
    """One worker thread running answers in turn; at most `waiting` more may wait for it."""

    def __init__(self, waiting: int, on_depth: Callable[[int], None] = lambda depth: None) -> None:
        self.capacity = waiting + 1  # the one being answered, and those waiting
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-answer")
        self.lock = threading.Lock()
        self.in_flight = 0
        self.seconds = 5.0  # a running estimate of one answer's time, for Retry-After
        self.on_depth = on_depth

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Queue `job`, or raise QueueFull (503). Cancelling the future of a job still waiting drops it."""
        with self.lock:
            if self.in_flight >= self.capacity:
                raise QueueFull(max(1, math.ceil(self.seconds * self.in_flight)))
            self.in_flight += 1
            self.on_depth(self.in_flight)
        future = self.pool.submit(self._timed, job)
        future.add_done_callback(self._done)
        return future

    def _timed(self, job: Callable[[], T]) -> T:
        began = time.monotonic()
        try:
            return job()
        finally:
            self.seconds = 0.8 * self.seconds + 0.2 * (time.monotonic() - began)

    def _done(self, _: Future[Any]) -> None:
        with self.lock:
            self.in_flight -= 1
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
            await _send_json(send, self.error())
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


async def _send_json(send: Any, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
