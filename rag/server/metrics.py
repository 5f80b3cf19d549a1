"""Prometheus metrics of one server (their own registry, so two apps in one test process do not
collide). Labels are route templates, methods, status codes and abstain reasons: never a
collection name, a source, a question or a key: /metrics (open, as a scrape target is) shows totals over
every caller, never what a caller asked or of which collection."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("rag_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("rag_request_seconds", "Time to answer an HTTP request (to the last byte)",
                                 ["route"], registry=self.registry,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.queue = Gauge("rag_answer_queue_depth", "Answers being made or waiting for the models",
                           registry=self.registry)
        self.answers = Counter("rag_answers", "Answers made, by outcome", ["outcome"], registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def answered(self, abstain_reason: str | None) -> None:
        self.answers.labels(abstain_reason or "answered").inc()


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """ASGI middleware counting every HTTP request by its route template and status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), 500

        async def watched(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"  # the caller's word: bounded
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - began)
