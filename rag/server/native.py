"""The native REST API: search, checked answers (JSON or SSE with typed events), a collection's
documents (list, upload, remove) and its rebuild, under the same keys as the chat API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from rag.conversation import Turn
from rag.retrieve import MODES
from rag.server import payloads, sse
from rag.server.answering import CLIENT_GONE, MAX_TURNS, Pending, Question
from rag.server.collections import Collection
from rag.server.errors import ApiError, required, within
from rag.server.payloads import Served
from rag.server.state import Authorized
from rag.uploads import UploadError

router = APIRouter(prefix="/v1", tags=["native"])
Mode = Literal["hybrid", "dense", "bm25"]
assert set(MODES) == {"hybrid", "dense", "bm25"}, "the API's modes must follow rag.retrieve.MODES"


class SearchRequest(BaseModel):
    collection: str
    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=50)
    mode: Mode = "hybrid"


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    collection: str
    question: str = Field(min_length=1)
    history: list[Message] = Field(default_factory=list, max_length=MAX_TURNS)
    k: int = Field(5, ge=1, le=20)
    mode: Mode = "hybrid"
    strict: bool | None = None
    stream: bool = False


@router.post("/search")
def search(request: SearchRequest, who: Authorized) -> dict[str, Any]:
    collection = who.collection(request.collection, "collection")
    required(request.query, "query", who.server.config.max_question)
    hits = collection.search(request.query, request.k, request.mode)
    return {"hits": [payloads.hit(h, collection.display) for h in hits]}


@router.post("/ask", response_model=None)
async def ask(body: AskRequest, request: Request, who: Authorized) -> dict[str, Any] | Response:
    collection = who.collection(body.collection, "collection")
    text = required(body.question, "question", who.server.config.max_question)
    for n, turn in enumerate(body.history):
        within(turn.content, f"history[{n}].content", who.server.config.max_question)
    history = tuple(Turn(m.role, m.content) for m in body.history)
    pending = Pending(who.server.queue, who.server.metrics, collection,
                      Question(text, history, body.k, body.mode, body.strict), who.key.id if who.key else None)
    if body.stream:
        return StreamingResponse(_events(pending, collection), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    served = await pending.result_for(request)
    return Response(status_code=CLIENT_GONE) if served is None else _body(served, collection)


def _body(served: Served, collection: Collection) -> dict[str, Any]:
    return {"answer": served.answer.answer} | payloads.evidence(served.answer, collection.display)


async def _events(pending: Pending, collection: Collection) -> AsyncIterator[bytes]:
    """delta (the final text in pieces), sentence (each checked sentence), final, or error."""
    try:
        while not await pending.wait(sse.KEEP_ALIVE_EVERY):
            yield sse.KEEP_ALIVE
        try:
            served = await pending.result()
        except ApiError as error:
            yield sse.event("error", error.body())
            return
        for piece in payloads.pieces(served.answer.answer):
            yield sse.event("delta", {"text": piece})
        for sentence in payloads.sentences(served.answer, collection.display):
            yield sse.event("sentence", sentence)
        yield sse.event("final", _body(served, collection))
    finally:
        pending.cancel()


# -- documents and rebuild ------------------------------------------------------------------------

@router.get("/collections/{name}/documents")
def documents(name: str, who: Authorized) -> dict[str, Any]:
    collection = who.collection(name)
    return {"documents": [{"path": collection.display(r.path), "status": r.status, "chunks": r.chunks,
                           "indexed_at": r.indexed_at, "error": r.error or None} for r in collection.files()]}


@router.post("/collections/{name}/documents", status_code=201)
async def upload(name: str, who: Authorized, file: Annotated[list[UploadFile], File()]) -> JSONResponse:
    """Each file checked as the web UI checks an upload; one refused file does not stop the others."""
    collection = who.collection(name)
    saved, refused = [], []
    for part in file:
        data = await part.read()
        try:
            saved.append(collection.upload(part.filename or "", data))
        except UploadError as exc:
            refused.append({"file": part.filename, "error": str(exc)})
    status = 201 if saved else 422
    if not saved:
        error = ApiError(422, "; ".join(r["error"] or "" for r in refused) or "no file sent", "file")
        return JSONResponse(error.body() | {"refused": refused}, status)
    return JSONResponse({"saved": saved, "refused": refused}, status)


@router.delete("/collections/{name}/documents/{path:path}")
def remove(name: str, path: str, who: Authorized) -> dict[str, Any]:
    collection = who.collection(name)
    try:
        collection.remove(path)
    except UploadError as exc:
        raise ApiError(404, str(exc), "path", "document_not_found") from exc
    return {"removed": path, "status": "removed; the next rebuild drops it from the index"}


@router.post("/collections/{name}/rebuild", status_code=202)
def rebuild(name: str, who: Authorized) -> dict[str, Any]:
    return who.collection(name).start_rebuild().to_json()


@router.get("/collections/{name}/rebuild")
def rebuild_status(name: str, who: Authorized) -> dict[str, Any]:
    job = who.collection(name).rebuild_job
    if job is None:
        raise ApiError(404, f"no rebuild of {name!r} has run since the server started", code="no_rebuild")
    return job.to_json()
