"""Bearer JWT (HS256) authentication and role checks as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, Request

from shared.errors import Forbidden, Unauthorized
from shared.settings import get_settings

ROLES = ("requester", "approver", "receiver", "ap_clerk", "admin", "auditor", "integration")
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class User:
    id: str
    roles: frozenset[str]
    name: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


def mint_token(user_id: str, roles: list[str], *, name: str | None = None,
               ttl: timedelta | None = None, secret: str | None = None) -> str:
    settings = get_settings()
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; known: {', '.join(ROLES)}")
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "roles": list(roles),
        "name": name or user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + (ttl or timedelta(hours=settings.jwt_ttl_hours))).timestamp()),
    }
    return jwt.encode(claims, secret or settings.jwt_secret.get_secret_value(), algorithm=_ALGORITHM)


def decode_token(token: str) -> User:
    try:
        claims = jwt.decode(
            token,
            get_settings().jwt_secret.get_secret_value(),
            algorithms=[_ALGORITHM],
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"the token is invalid: {exc}") from exc
    roles = claims.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("the token's roles claim must be a list of strings")
    return User(id=str(claims["sub"]), roles=frozenset(roles), name=claims.get("name"))


def current_user(request: Request) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    return decode_token(token.strip())


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: str):  # noqa: ANN201 - a dependency factory
    """Dependency: the caller must hold at least one of `roles`."""

    def dependency(user: CurrentUser) -> User:
        if not user.has(*roles):
            raise Forbidden(f"requires one of the roles: {', '.join(roles)}")
        return user

    return Depends(dependency)
