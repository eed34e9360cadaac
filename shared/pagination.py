"""Opaque list cursors (§4: `?cursor=` / `next_cursor`): a JSON array, URL-safe base64."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The parts of a cursor this API issued; ValueError for anything else."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("not a cursor from this API") from exc
    if not isinstance(parts, list) or len(parts) != arity:
        raise ValueError("not a cursor from this API")
    return parts
