"""OpenAPI post-processing: every error response is documented as problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shared.errors import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "rule", "message"],
                "properties": {"path": {"type": "string"}, "rule": {"type": "string"},
                               "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_ERRORS = {
    "400": "Malformed request",
    "401": "Missing, invalid or expired token",
    "403": "Wrong role or not your object",
    "404": "Not found",
    "409": "Conflict with the current state, or a duplicate",
    "413": "Body too large",
    "415": "Unsupported content type",
    "422": "Valid syntax, invalid content: `errors` names each field and rule",
    "503": "A dependency is unreachable",
}
_PUBLIC = {"/healthz", "/readyz", "/metrics"}


def install_problem_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        ref = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                wanted = set(_ERRORS) - {"503"} if path not in _PUBLIC else {"503"} if path == "/readyz" else set()
                for status in wanted | {s for s in responses if s in _ERRORS}:
                    existing = responses.get(status, {})
                    responses[status] = {"description": existing.get("description") or _ERRORS[status],
                                         "content": ref}
        schemas = schema["components"]["schemas"]
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
