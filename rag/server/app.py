"""The FastAPI application: the server's state, keys, errors in OpenAI's shape, /health, /metrics,
and the two APIs (rag.server.openai_api, rag.server.native) mounted under /v1.

Loading (models and indexes) runs in a thread started with the app, so /health answers
"loading" (503) at once and a supervisor can wait for "ready".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from rag.server import native, openai_api
from rag.server.collections import Collections
from rag.server.config import ServeConfig
from rag.server.errors import ApiError, from_validation
from rag.server.limits import BodyLimit
from rag.server.metrics import MetricsMiddleware
from rag.server.state import LOADING_RETRY, KeyBeforeBody, Server


def create_app(config: ServeConfig, load: Callable[[], Collections]) -> FastAPI:
    """The app serving `config`; `load` opens the collections and loads the models (in a thread at startup)."""
    server = Server(config, load)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.start_loading()
        yield
        server.queue.close()

    app = FastAPI(title="rag", summary="Checked answers with their sources, over your collections",
                  description="The contract: docs/api.md.", lifespan=lifespan)
    app.state.server = server
    _errors(app)
    app.include_router(openai_api.router)
    app.include_router(native.router)

    @app.get("/health")
    def health() -> JSONResponse:
        if server.collections is not None:
            return JSONResponse({"status": "ready", "collections": len(server.collections.by_name)})
        body = {"status": "failed", "error": f"{server.failed} while loading; the server's log says why"} \
            if server.failed else {"status": "loading"}
        return JSONResponse(body, 503, {"Retry-After": str(LOADING_RETRY)})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(server.metrics.text(), media_type="text/plain; version=0.0.4")

    app.add_middleware(KeyBeforeBody, server=server)  # inside the body limit: a 413 needs no key lookup
    app.add_middleware(BodyLimit, max_bytes=config.max_body)
    app.add_middleware(MetricsMiddleware, metrics=server.metrics)  # outermost: it counts the 413s too
    return app


def _errors(app: FastAPI) -> None:
    """Every error as OpenAI's body, FastAPI's own (validation, 404, 405) included."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return from_validation(exc.errors()).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _unwrapped(exc).response()

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return ApiError(500, f"internal error ({type(exc).__name__})").response()


def _unwrapped(exc: HTTPException) -> ApiError:
    """FastAPI answers 400 "There was an error parsing the body" when json.loads raises anything but a
    JSONDecodeError: a body that is not UTF-8 (UnicodeDecodeError), JSON nested past Python's recursion
    limit (RecursionError). Both are malformed JSON: 422 naming the body, as the contract says."""
    if isinstance(exc.__cause__, (UnicodeDecodeError, RecursionError)):
        why = "not UTF-8" if isinstance(exc.__cause__, UnicodeDecodeError) else "nested too deeply"
        return ApiError(422, f"the request body is not valid JSON: {why}", "body", "invalid_json")
    return ApiError(exc.status_code, str(exc.detail))
