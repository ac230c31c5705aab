"""Errors as RFC 9457 problem details (`application/problem+json`), naming the bad field and value.

    {"type": "https://storylake.dev/problems/invalid-parameter", "title": "Invalid parameter", "status": 400,
     "detail": "limit: must be <= 500, got 100000", "field": "limit", "value": "100000"}

Every error the routes can meet maps here; anything else is a 500 whose detail says nothing internal (the
traceback goes to the server log).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from serving.cursor import InvalidCursorError
from serving.seen_by import SeenByExpiredError
from serving.web.auth import AuthError
from storylake.errors import NotFoundError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://storylake.dev/problems/"
TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    410: "Gone", 413: "Payload too large", 415: "Unsupported media type", 422: "Unprocessable content",
    500: "Internal server error", 503: "Service unavailable",
}


class Problem(Exception):
    """An error answer: status, a type slug, a one-line detail and optionally the field and value at fault."""

    def __init__(self, status: int, slug: str, detail: str, field: str | None = None, value: Any = None) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.field, self.value = status, slug, detail, field, value


def problem_response(p: Problem, headers: dict[str, str] | None = None) -> Response:
    doc: dict[str, Any] = {
        "type": TYPE_BASE + p.slug, "title": TITLES.get(p.status, "Error"), "status": p.status,
        "detail": _safe(p.detail),
    }
    if p.field is not None:
        doc["field"] = _safe(p.field)
    if p.value is not None:
        doc["value"] = _shown(p.value)
    return Response(orjson.dumps(doc), status_code=p.status, media_type=MEDIA_TYPE, headers=headers)


def _safe(text: str) -> str:
    """Text that encodes as UTF-8 (a client's lone surrogates become U+FFFD)."""
    return text.encode("utf-8", "replace").decode("utf-8", "replace") if not text.isascii() else text


def _shown(value: Any) -> str:
    """A client's value as shown in a problem: JSON for non-strings (integers of any size), at most 120 chars."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = _safe(text)
    return text if len(text) <= 120 else text[:117] + "..."


def _location(loc: tuple[Any, ...]) -> str:
    """'limit', 'receipts[3].completionPct' from a pydantic error location."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def from_validation(exc: RequestValidationError) -> Problem:
    first = exc.errors()[0]
    field = _location(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return Problem(400, "malformed-json", f"request body is not valid JSON: {first.get('msg', '')}", "body")
    value = first.get("input")
    msg = str(first.get("msg", "invalid"))
    shown = "" if first.get("type") == "missing" else f", got {_shown(value)}"
    return Problem(400, "invalid-parameter", f"{field}: {msg}{shown}", field, None if shown == "" else value)


def install(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc, headers)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(from_validation(exc))

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(Problem(exc.status_code, slug, str(exc.detail)))

    async def on_error(request: Request, exc: Exception) -> Response:
        p = as_problem(exc)
        if p is None:
            log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
            p = Problem(500, "internal", "internal server error (logged on the server)")
        return problem_response(p, {"WWW-Authenticate": "Bearer"} if p.status == 401 else None)

    for cls in (AuthError, PermissionError, SeenByExpiredError, NotFoundError, ValueError):
        app.add_exception_handler(cls, on_error)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_error)


def as_problem(exc: Exception) -> Problem | None:
    """The problem of a serving-library error (None: not an expected error)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, AuthError):
        return Problem(401, "unauthorized", str(exc))
    if isinstance(exc, PermissionError):
        return Problem(403, "forbidden", str(exc))
    if isinstance(exc, SeenByExpiredError):
        return Problem(410, "seen-by-expired", str(exc))
    if isinstance(exc, NotFoundError):
        return Problem(404, "not-found", str(exc))
    if isinstance(exc, InvalidCursorError):
        return Problem(400, "invalid-cursor", str(exc), "cursor")
    if isinstance(exc, ValueError):
        return Problem(400, "invalid-parameter", str(exc))
    return None
