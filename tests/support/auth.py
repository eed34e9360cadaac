from __future__ import annotations

from datetime import timedelta

from shared.auth import mint_token


def bearer(user: str, *roles: str, ttl: timedelta | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(user, list(roles), ttl=ttl)}"}
