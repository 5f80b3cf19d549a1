"""Server-sent events: the `data:` lines OpenAI's stream uses and the typed events of /v1/ask."""

from __future__ import annotations

import json
from typing import Any

KEEP_ALIVE = b": waiting for the models\n\n"  # a comment line: clients skip it, proxies see traffic
KEEP_ALIVE_EVERY = 10.0  # seconds
DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def event(name: str, payload: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()
