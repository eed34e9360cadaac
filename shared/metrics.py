"""Prometheus metrics shared by every service (`p2p_` prefix, base units, no ids as labels)."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "p2p_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "p2p_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter(
    "p2p_events_published_total", "Events published from the outbox", ["topic", "type"]
)
EVENTS_CONSUMED = Counter(
    "p2p_events_consumed_total",
    "Events consumed, by outcome (processed, duplicate, ignored, dead_lettered)",
    ["topic", "type", "outcome"],
)
CONSUMER_BATCHES = Counter(
    "p2p_consumer_batches_total",
    "Transactions that settled several events at once: committed, or rolled back and settled "
    "one by one (fell_back)",
    ["consumer", "outcome"],
)
OUTBOX_PENDING = Gauge("p2p_outbox_pending", "Outbox rows not yet published")
CONSUMER_LAG = Gauge(
    "p2p_consumer_lag", "Records behind the partition's high watermark", ["topic", "partition"]
)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths collapse to one label value so scanners can't blow up cardinality.
    return path or "unmatched"


class HttpMetricsMiddleware:
    """Pure ASGI middleware: counts and times every request by route template."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_of(scope)
            HTTP_REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
            HTTP_DURATION.labels(self.service, route).observe(time.perf_counter() - start)


def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
