"""OpenAI's chat API over the collections: `GET /v1/models` lists what the key may use, and
`POST /v1/chat/completions` answers the last user message from the collection named by `model`,
with the answer's evidence in an extra field `rag` (docs/api.md), so the `openai` client and
LangChain's ChatOpenAI work unchanged and can still read the sources."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.conversation import ASSISTANT, USER, Turn
from rag.server import payloads, sse
from rag.server.answering import CLIENT_GONE, MAX_TURNS, Pending, Question
from rag.server.collections import Collection
from rag.server.errors import ApiError, required, within
from rag.server.payloads import Served
from rag.server.state import Authorized

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
ROLES = ("system", "developer", "user", "assistant", "tool")


class Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[Part] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """Sampling fields (temperature, max_tokens, ...) are accepted and ignored: the answer is checked, not sampled."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


@router.get("/models")
def models(who: Authorized) -> dict[str, Any]:
    collections = who.server.ready()
    return {"object": "list", "data": [_model(collections.by_name[name]) for name in who.names()]}


@router.get("/models/{name}")
def model(name: str, who: Authorized) -> dict[str, Any]:
    return _model(who.collection(name))


def _model(collection: Collection) -> dict[str, Any]:
    return {"id": collection.name, "object": "model", "created": collection.created, "owned_by": "rag"}


def question_of(request: ChatRequest, max_chars: int) -> Question:
    """The last user message, after the conversation before it (its user and assistant turns; system
    messages are the caller's instructions to a model, and this answer is not sampled from one).
    422 naming the message when there is none, or it is empty or too long."""
    last = max((n for n, m in enumerate(request.messages) if m.role == "user"), default=None)
    for n, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise ApiError(422, f"messages[{n}].role: {message.role!r} is not one of {', '.join(ROLES)}",
                           f"messages[{n}].role")
    if last is None:
        raise ApiError(422, "messages: no message with role 'user' to answer", "messages")
    where = f"messages[{last}].content"
    text = required(request.messages[last].text().strip(), where, max_chars)
    for n, message in enumerate(request.messages[:last]):
        within(message.text(), f"messages[{n}].content", max_chars)
    history = tuple(Turn(m.role, m.text()) for m in request.messages[:last] if m.role in (USER, ASSISTANT))
    return Question(text, history[-MAX_TURNS:], field=where)


@router.post("/chat/completions", response_model=None)
async def chat(body: ChatRequest, request: Request, who: Authorized) -> Response:
    """The answer is awaited whole before the response starts (streamed or not), so that its evidence can
    also go in the X-RAG header, which LangChain's ChatOpenAI shows (include_response_headers=True)."""
    collection = who.collection(body.model, "model")
    question = question_of(body, who.server.config.max_question)
    pending = Pending(who.server.queue, who.server.metrics, collection, question, who.key.id if who.key else None)
    served = await pending.result_for(request)
    if served is None:
        return Response(status_code=CLIENT_GONE)
    head = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()), "model": collection.name,
            "system_fingerprint": None}
    evidence = payloads.evidence(served.answer, collection.display)
    headers = {payloads.HEADER: payloads.header(evidence)}
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return StreamingResponse(_stream(served, evidence, head, usage), media_type=sse.MEDIA_TYPE,
                                 headers=sse.HEADERS | headers)
    return JSONResponse(head | {"object": "chat.completion", "usage": _usage(served), "rag": evidence,
                                "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": served.answer.answer}}]},
                        headers=headers)


def _usage(served: Served) -> dict[str, int]:
    prompt = served.answer.prompt_tokens
    return {"prompt_tokens": prompt, "completion_tokens": served.completion_tokens,
            "total_tokens": prompt + served.completion_tokens}


def _stream(served: Served, evidence: dict[str, Any], head: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    """The role, the final answer's text in pieces, the chunk with `finish_reason` and `rag`, usage, [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return sse.data(head | {"object": "chat.completion.chunk",
                                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
                        | extra)

    yield chunk({"role": "assistant", "content": ""})
    for piece in payloads.pieces(served.answer.answer):
        yield chunk({"content": piece})
    yield chunk({}, "stop", rag=evidence)
    if include_usage:
        yield sse.data(head | {"object": "chat.completion.chunk", "choices": [], "usage": _usage(served)})
    yield sse.DONE
