"""What every request reads (config, keys, limits, metrics and, once loaded, the collections) and
the auth dependency of every /v1 route: who is calling, and which collections they may see."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from rag.server.collections import Collection, Collections
from rag.server.config import ServeConfig
from rag.server.errors import ApiError, not_found
from rag.server.keys import Key, KeyStore
from rag.server.limits import AnswerQueue, RateLimiter
from rag.server.metrics import Metrics

LOADING_RETRY = 5
LOG = logging.getLogger(__name__)


class Server:
    """What every request reads: config, keys, limits, metrics and (once loaded) the collections."""

    def __init__(self, config: ServeConfig, load: Callable[[], Collections]) -> None:
        self.config = config
        self.load = load
        self.keys = KeyStore(config.key_store)
        self.limiter = RateLimiter()
        self.metrics = Metrics()
        self.queue = AnswerQueue(config.queue, self.metrics.queue.set)
        self.collections: Collections | None = None
        self.failed: str | None = None

    def start_loading(self) -> None:
        threading.Thread(target=self._load, name="rag-load", daemon=True).start()

    def _load(self) -> None:
        try:
            self.collections = self.load()
        except Exception as exc:  # the reason goes to the log only: /health needs no key, and it may name an index
            self.failed = type(exc).__name__
            LOG.exception("rag serve: loading failed; the server answers 503 until restarted")

    def ready(self) -> Collections:
        if self.collections is None:
            message = "the server failed to load (its log says why)" if self.failed else "the server is still loading"
            raise ApiError(503, message, code="loading", retry_after=None if self.failed else LOADING_RETRY)
        return self.collections


@dataclass(frozen=True)
class Caller:
    """Who is asking: their key (None on an open server) and what it lets them see."""

    server: Server
    key: Key | None

    def names(self) -> list[str]:
        every = self.server.ready().names()
        return every if self.key is None else [n for n in every if n in self.key.collections]

    def collection(self, name: str, param: str | None = None) -> Collection:
        """The collection `name`, or the same 404 whether it does not exist or is not granted."""
        collections = self.server.ready()
        if name not in collections.by_name or (self.key is not None and name not in self.key.collections):
            raise not_found(name, param)
        return collections.by_name[name]


def server_of(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def authenticate(server: Server, authorization: str | None) -> Key | None:
    """The caller's key: None on an open server (loopback, no active key), else a valid key or 401.
    Only a loopback server is ever open: one on another address keeps asking for a key after its
    last key is revoked or its store removed (then nobody gets in)."""
    if server.config.loopback and not server.keys.any_active():
        return None
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "no API key: send the header 'Authorization: Bearer KEY'", code="missing_api_key")
    key = server.keys.verify(secret.strip())
    if key is None:
        raise ApiError(401, "the API key is not valid (unknown or revoked)")
    return key


FOUND = "rag.key"  # where KeyBeforeBody leaves a request's key, as a 1-tuple (its key may be None: an open server)


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """The auth dependency of every /v1 route: the key KeyBeforeBody found (authenticated here only for an app
    without that middleware), then the key's rate spent (429)."""
    server = server_of(request)
    found: tuple[Key | None] | None = request.scope.get("state", {}).get(FOUND)
    key = found[0] if found is not None else authenticate(server, authorization)
    if key is not None and key.rate is not None:
        server.limiter.take(key.id, key.rate)
    return Caller(server, key)


class KeyBeforeBody:
    """ASGI middleware: a /v1 request without a valid key is answered 401 before its body is read.
    FastAPI reads and parses a body (JSON, or multipart spooled to disk, up to the size limit) before
    any dependency runs, so without this a caller with no key could make the server do that work. The key
    found is left in the request's state for `caller`, so each request looks its key up once."""

    def __init__(self, app: Any, server: Server) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            try:
                scope.setdefault("state", {})[FOUND] = (authenticate(self.server, header or None),)
            except ApiError as error:
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


Authorized = Annotated[Caller, Depends(caller)]
