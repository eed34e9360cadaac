"""The common shape of a service process: app factory, health, metrics, background workers.

Every service builds its app with `create_service_app()`; the lifespan migrates its database,
then starts its outbox relay, its consumers and any extra workers (Temporal for approvals) as
background threads, and stops them on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.consumer import ConsumerRunner, Subscription
from shared.db import Database, ensure_database, migrate, service_database, sqlalchemy_url
from shared.errors import PayloadTooLarge, install_error_handlers, problem
from shared.kafka import broker_reachable
from shared.logs import configure_logging, correlation_id_var
from shared.metrics import HttpMetricsMiddleware, metrics_endpoint
from shared.openapi import install_problem_openapi
from shared.outbox import Outbox, OutboxRelay, PublishedHook
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]  # raises when the dependency is not reachable


@dataclass
class ServiceRuntime:
    """What a running service holds; available as `app.state.runtime`."""

    name: str
    settings: Settings
    db: Database
    outbox: Outbox
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    consumers: list[ConsumerRunner] = field(default_factory=list)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def start_thread(self, name: str, target: Callable[[threading.Event], None]) -> None:
        t = threading.Thread(target=target, args=(self.stop,), name=f"{self.name}-{name}", daemon=True)
        t.start()
        self.threads.append(t)


def service_db_url(settings: Settings, service: str) -> str:
    if not settings.database_url:
        raise RuntimeError("P2P_DATABASE_URL is not set (p2p up sets it for the embedded server)")
    return sqlalchemy_url(settings.database_url, service_database(service, settings.topic_prefix))


def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


def get_session(request: Request):  # noqa: ANN201 - generator dependency
    with request.app.state.runtime.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


class CorrelationMiddleware:
    """Takes `X-Correlation-ID` (or makes one), exposes it to logs and the outbox, echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-correlation-id")
        cid = incoming.decode("latin-1")[:128] if incoming else str(uuid.uuid4())
        token = correlation_id_var.set(cid)

        async def send_wrapper(message):  # noqa: ANN001, ANN202
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-correlation-id", cid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            correlation_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413 before the route reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def limited_receive():  # noqa: ANN202
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"the body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Payload too large", f"the body exceeds {self.max_bytes} bytes",
                           code="payload-too-large")
        await response(scope, receive, send)


def _health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up")
    def healthz(runtime: RuntimeDep) -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @router.get("/readyz", summary="Every dependency is reachable (503 names the failing one)")
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        async def check(name: str, fn: ReadinessCheck) -> tuple[str, str | None]:
            try:
                await asyncio.wait_for(asyncio.to_thread(fn), timeout=3.0)
                return name, None
            except Exception as exc:  # any failure means "not ready", reported by name
                return name, f"{type(exc).__name__}: {exc}"[:300]

        results = await asyncio.gather(*(check(n, f) for n, f in runtime.readiness.items()))
        failing = {name: err for name, err in results if err}
        checks = {name: ("ok" if not err else "failing") for name, err in results}
        if failing:
            names = ", ".join(failing)
            return problem(503, "Not ready", f"unreachable: {names}", code="not-ready",
                           checks=checks, failing=failing)
        return JSONResponse({"status": "ready", "service": runtime.name, "checks": checks})

    router.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return router


StartHook = Callable[[ServiceRuntime], None]


def create_service_app(
    name: str,
    *,
    migrations_dir: Path,
    routers: list[APIRouter],
    subscriptions: dict[str, Subscription] | None = None,
    on_start: list[StartHook] | None = None,
    on_stop: list[StartHook] | None = None,
    description: str = "",
    settings: Settings | None = None,
    on_published: PublishedHook | None = None,
) -> FastAPI:
    """Build a service. `subscriptions` maps consumer name (`<service>.<purpose>`) to handlers;
    `on_published` runs in the relay's transaction for each batch the broker acknowledged."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or get_settings()
        configure_logging(name, cfg.log_level)
        db_url = service_db_url(cfg, name)
        ensure_database(cfg.database_url, service_database(name, cfg.topic_prefix))
        await asyncio.to_thread(migrate, db_url, migrations_dir)
        anyio.to_thread.current_default_thread_limiter().total_tokens = cfg.api_threads
        db = Database(db_url, pool_size=cfg.db_pool_size, max_overflow=cfg.db_max_overflow)
        runtime = ServiceRuntime(name=name, settings=cfg, db=db, outbox=Outbox(name))
        runtime.readiness["database"] = runtime.db.ping
        runtime.readiness["kafka"] = lambda: broker_reachable(cfg)
        app.state.runtime = runtime
        for hook in on_start or []:
            result = hook(runtime)
            if asyncio.iscoroutine(result):
                await result
        relay = OutboxRelay(runtime.outbox, runtime.db.sessions, cfg, on_published)
        runtime.start_thread("relay", relay.run)
        for consumer_name, subscription in (subscriptions or {}).items():
            runner = ConsumerRunner(consumer_name, subscription, runtime.db.sessions, cfg)
            runtime.consumers.append(runner)
            runtime.start_thread(consumer_name, runner.run)
        log.info("%s started", name)
        try:
            yield
        finally:
            runtime.stop.set()
            for hook in on_stop or []:
                result = hook(runtime)
                if asyncio.iscoroutine(result):
                    await result
            for t in runtime.threads:
                await asyncio.to_thread(t.join, 10)
            runtime.db.dispose()
            log.info("%s stopped", name)

    app = FastAPI(
        title=f"p2p {name}",
        description=description,
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_problem_openapi(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=(settings or get_settings()).max_body_bytes)
    app.add_middleware(HttpMetricsMiddleware, service=name)
    app.add_middleware(CorrelationMiddleware)
    app.include_router(_health_router())
    for router in routers:
        app.include_router(router)
    return app
