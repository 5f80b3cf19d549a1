"""Every error the server answers, in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`),
so the `openai` client raises its own typed exceptions with our message. Handlers turn FastAPI's
validation errors and malformed JSON into the same shape, with `param` naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

# status -> (type, code), as OpenAI names them
KINDS = {400: ("invalid_request_error", "bad_request"), 401: ("invalid_request_error", "invalid_api_key"),
         404: ("invalid_request_error", "not_found"), 409: ("invalid_request_error", "conflict"),
         413: ("invalid_request_error", "request_too_large"), 422: ("invalid_request_error", "invalid_value"),
         429: ("rate_limit_error", "rate_limit_exceeded"), 500: ("server_error", "internal_error"),
         503: ("server_error", "overloaded")}


class ApiError(HTTPException):
    """An HTTP error with OpenAI's body; `retry_after` seconds become a Retry-After header. An HTTPException,
    so that FastAPI passes it through as it is when raised while the body is read (the body limit)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(status, message, {"Retry-After": str(retry_after)} if retry_after is not None else None)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        kind, code = KINDS.get(self.status, ("invalid_request_error", "error"))
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code or code}}

    def response(self) -> JSONResponse:
        """This error as the server answers it (also an ASGI app, for the middlewares answering before a route)."""
        return JSONResponse(self.body(), self.status, self.headers)


def not_found(name: str, param: str | None) -> ApiError:
    """The one answer for a collection that does not exist and for one the key was not granted (`param`: the
    field that named it, which depends on the endpoint only)."""
    return ApiError(404, f"collection {name!r} not found", param, "model_not_found")


def within(text: str, field: str, max_chars: int) -> str:
    """`text`, or 422 naming `field` when it is over `max_chars` (a question, a search query, and each earlier
    turn of a conversation, since a follow-up is rewritten with them)."""
    if len(text) > max_chars:
        raise ApiError(422, f"{field}: {len(text)} characters, over the limit of {max_chars}", field)
    return text


def required(text: str, field: str, max_chars: int) -> str:
    """`text` stripped, or 422 naming `field` when it is empty or over `max_chars`."""
    if not text.strip():
        raise ApiError(422, f"{field}: is empty", field)
    return within(text, field, max_chars).strip()


def field_path(location: Sequence[int | str]) -> str:
    """A pydantic error location as a field path: ("body", "messages", 2, "content") -> messages[2].content."""
    out = ""
    for part in location:
        if part in ("body", "query", "path"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def from_validation(errors: Sequence[Any]) -> ApiError:
    """FastAPI's RequestValidationError list as one 422 naming the first bad field."""
    first: dict[str, Any] = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return ApiError(422, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}",
                        "body", "invalid_json")
    where = field_path(first.get("loc", ())) or "body"
    if where == "body":
        return ApiError(422, f"the request body must be a JSON object ({first.get('msg', 'invalid')})", "body")
    return ApiError(422, f"{where}: {first.get('msg', 'invalid value')}", where)
