"""RFC 9457 problem details: one error type for the business, one mapping for all of it."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import database_unavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class P2PError(Exception):
    """A business error with its HTTP status and a stable code (the problem `type`)."""

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status or self.status
        self.code = code or self.code
        self.title = title or self.title
        self.errors = errors
        self.extra = extra


class BadRequest(P2PError):
    status, code, title = 400, "malformed", "Malformed request"


class Unauthorized(P2PError):
    status, code, title = 401, "unauthorized", "Authentication required"


class Forbidden(P2PError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(P2PError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(P2PError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(P2PError):
    status, code, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(P2PError):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(P2PError):
    status, code, title = 422, "validation", "Validation failed"


def field_error(path: str, rule: str, message: str) -> dict[str, str]:
    return {"path": path, "rule": rule, "message": message}


class ProblemResponse(JSONResponse):
    """problem+json rendered ASCII-only, so text echoed from a hostile request (a lone
    surrogate, say) can never make rendering the error itself fail."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    code: str = "about:blank",
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": code, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else str(loc[0] if loc else "")


def validation_errors(exc_errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        field_error(_loc_to_path(tuple(e.get("loc", ()))), e.get("type", "invalid"), e.get("msg", ""))
        for e in exc_errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(P2PError)
    async def _p2p_error(_: Request, exc: P2PError) -> JSONResponse:
        # RFC 9110: a 401 names the scheme the client should use.
        headers = {"WWW-Authenticate": 'Bearer realm="p2p"'} if exc.status == 401 else None
        return problem(exc.status, exc.title, exc.detail, code=exc.code, errors=exc.errors,
                       headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(400, "Malformed request", "the body is not valid JSON", code="malformed",
                           errors=validation_errors(errors))
        return problem(422, "Validation failed", "the request does not satisfy the contract",
                       code="validation", errors=validation_errors(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail),
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):  # a transient outage: the client may retry
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                        exc)
            return problem(503, "Service unavailable", "the database is unavailable; retry later",
                           code="database-unavailable", headers={"Retry-After": "1"})
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
