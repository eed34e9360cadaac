"""The four services in-process with their real lifespan, for bad-input and access tests.

`running(infra, name)` starts one service (migrations, relay, consumers; Temporal worker for
approvals) against the session's PostgreSQL and broker with its own databases and topics.
`TestClientAdapter` lets `requests` (which schemathesis speaks) reach that service through the
service's own `TestClient`, so every request runs on the event loop its lifespan started on.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests
import requests.adapters
import urllib3
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.approvals.app import create_app as approvals_app
from services.invoices.app import create_app as invoices_app
from services.matching.app import create_app as matching_app
from services.requisitions.app import create_app as requisitions_app
from shared.auth import ROLES
from shared.settings import Settings
from tests.support.auth import bearer
from tests.support.stack import Infra, RunningService, run_service

APPS: dict[str, Callable[[Settings | None], FastAPI]] = {
    "requisitions": requisitions_app,
    "approvals": approvals_app,
    "invoices": invoices_app,
    "matching": matching_app,
}
SERVICES = tuple(APPS)

# A caller holding every role: schemathesis tests input handling, not authorisation.
ALL_ROLES = bearer("fuzzer", *ROLES)


def service_settings(infra: Infra, name: str) -> Settings:
    if name == "approvals":  # its lifespan starts a Temporal worker
        return infra.settings(temporal_address=infra.ensure_temporal())
    return infra.settings()


@contextmanager
def running(infra: Infra, name: str) -> Iterator[RunningService]:
    with run_service(APPS[name], service_settings(infra, name)) as svc:
        yield svc


class TestClientAdapter(requests.adapters.HTTPAdapter):
    """A `requests` transport that hands each prepared request to a Starlette `TestClient`."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout=None, verify=True, cert=None, proxies=None) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        r = self.client.request(request.method or "GET", request.url or "/",
                                headers=dict(request.headers), content=body)
        headers = [(k, v) for k, v in r.headers.multi_items() if k.lower() != "content-encoding"]
        raw = urllib3.HTTPResponse(body=io.BytesIO(r.content), headers=headers,
                                   status=r.status_code, reason=r.reason_phrase, version=11,
                                   preload_content=False, decode_content=False)
        return self.build_response(request, raw)


def requests_session(client: TestClient) -> requests.Session:
    session = requests.Session()
    adapter = TestClientAdapter(client)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest, infra: Infra) -> Iterator[tuple[str, RunningService]]:
    """(name, running service): each service once per test module, for every test that asks."""
    with running(infra, request.param) as svc:
        yield request.param, svc
