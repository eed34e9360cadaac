"""A small HTTP client for the four services: dev tokens per persona, problem+json errors,
retries on connection errors, and polling with deadlines (never fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from shared.auth import mint_token
from shared.settings import Settings

SERVICES = ("requisitions", "approvals", "invoices", "matching")
T = TypeVar("T")


class StackUnreachable(Exception):
    """A service does not answer at all: the stack is not running (or not on these ports)."""


class DeadlineExceeded(Exception):
    pass


@dataclass
class ApiError(Exception):
    method: str
    url: str
    status: int
    body: Any

    def __str__(self) -> str:
        detail = self.body.get("detail") if isinstance(self.body, dict) else self.body
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        extra = f" {errors}" if errors else ""
        return f"{self.method} {self.url} → {self.status}: {detail}{extra}"


@dataclass
class Api:
    settings: Settings
    host: str = "127.0.0.1"
    timeout: float = 30.0
    _tokens: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    _client: httpx.Client | None = None
    calls: int = 0

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=self.timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def base_url(self, service: str) -> str:
        return f"http://{self.host}:{self.settings.service_port(service)}"

    def token(self, user: str, *roles: str, name: str | None = None) -> str:
        key = (user, tuple(sorted(roles)))
        if key not in self._tokens:
            self._tokens[key] = mint_token(user, list(roles), name=name)
        return self._tokens[key]

    def request(self, service: str, method: str, path: str, *, user: str | None = None,
                roles: tuple[str, ...] = (), ok: tuple[int, ...] = (200, 201, 202, 204, 207),
                json: Any = None, content: bytes | str | None = None,
                content_type: str | None = None, params: dict[str, Any] | None = None,
                attempts: int = 4) -> httpx.Response:
        """One call; returns the response when its status is in `ok`, else raises ApiError."""
        assert self._client is not None
        headers: dict[str, str] = {}
        if user:
            headers["Authorization"] = f"Bearer {self.token(user, *roles)}"
        if content_type:
            headers["Content-Type"] = content_type
        url = f"{self.base_url(service)}{path}"
        for attempt in range(1, attempts + 1):
            try:
                self.calls += 1
                response = self._client.request(method, url, headers=headers, json=json,
                                                content=content, params=params)
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise StackUnreachable(f"{service} at {self.base_url(service)} does not "
                                           f"answer ({exc.__class__.__name__})") from exc
                time.sleep(0.25 * attempt)  # back off before retrying a refused connection
                continue
            if response.status_code in (502, 503, 504) and attempt < attempts:
                time.sleep(0.25 * attempt)
                continue
            if response.status_code not in ok:
                try:
                    body = response.json()
                except ValueError:
                    body = response.text[:500]
                raise ApiError(method, url, response.status_code, body)
            return response
        raise AssertionError("unreachable")

    def get(self, service: str, path: str, **kw: Any) -> Any:
        return self.request(service, "GET", path, **kw).json()

    def post(self, service: str, path: str, **kw: Any) -> Any:
        response = self.request(service, "POST", path, **kw)
        return response.json() if response.content else None

    def pages(self, service: str, path: str, *, params: dict[str, Any] | None = None,
              **kw: Any) -> list[dict[str, Any]]:
        """Every item of a paginated list (`items` + `next_cursor`)."""
        items: list[dict[str, Any]] = []
        query = dict(params or {}, limit=500)
        while True:
            page = self.get(service, path, params=query, **kw)
            items.extend(page.get("items") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return items
            query["cursor"] = cursor

    def check_reachable(self) -> dict[str, str]:
        """`/readyz` of every service; raises StackUnreachable naming what does not answer."""
        states: dict[str, str] = {}
        down: list[str] = []
        for service in SERVICES:
            try:
                response = self._client.get(f"{self.base_url(service)}/readyz", timeout=5)
            except httpx.TransportError:
                down.append(f"{service} ({self.base_url(service)})")
                continue
            states[service] = "ready" if response.status_code == 200 else \
                f"not ready ({response.status_code}: {response.text[:200]})"
        if down:
            raise StackUnreachable("not reachable: " + ", ".join(down))
        return states


def poll(predicate: Callable[[], T], *, timeout: float, interval: float = 0.25,
         what: str = "condition") -> T:
    """Call `predicate` until it returns something truthy; DeadlineExceeded at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
