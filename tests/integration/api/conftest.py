"""The four services in-process with their real lifespan, for bad-input and access tests.

`running(infra, name)` starts one service (migrations, relay, consumers; Temporal worker for
approvals) against the session's PostgreSQL and broker with its own databases and topics.
`TestClientAdapter` lets `requests` (which schemathesis speaks) reach that service through the
service's own `TestClient`, so every request runs on the event loop its lifespan started on.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

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
from shared.contracts.approvals import ApprovalDecided
from shared.contracts.requisitions import RequisitionLine, RequisitionSubmitted
from shared.settings import Settings
from tests.support.auth import bearer
from tests.support.kafka import produce
from tests.support.poll import wait_until
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


# -- real objects: a supplier, a draft requisition and a PO of alice's; a task of bob's -----
def _requisitions_objects(svc: RunningService) -> dict[str, str]:
    c, admin, alice = svc.client, bearer("root", "admin"), bearer("alice", "requester")
    r = c.post("/suppliers", headers=admin, json={"id": "SUP-MATRIX", "name": "Matrix Ltd"})
    assert r.status_code in (201, 409), r.text  # 409: a second call on the same service
    body = {"title": "Matrix", "cost_center": "CC-100", "currency": "EUR",
            "lines": [{"description": "Cable", "quantity": "5", "unit_price": "10",
                       "supplier_id": "SUP-MATRIX"}]}
    draft = c.post("/requisitions", headers=alice, json=body)
    ordered = c.post("/requisitions", headers=alice, json=body)
    assert draft.status_code == ordered.status_code == 201, (draft.text, ordered.text)
    ordered_id = ordered.json()["id"]
    assert c.post(f"/requisitions/{ordered_id}/submit", headers=alice).status_code == 202
    produce(svc.settings, ApprovalDecided(
        requisition_id=ordered_id, outcome="approved", decided_by=["bob"], policy_version=1,
        decided_at=datetime.now(UTC)), correlation_id=ordered_id)
    numbers = wait_until(lambda: c.get(f"/requisitions/{ordered_id}", headers=alice)
                         .json()["purchase_orders"], 30, message="the matrix PO")
    return {"supplier_id": "SUP-MATRIX", "req_id": draft.json()["id"], "ref": numbers[0]}


def _approvals_objects(svc: RunningService) -> dict[str, str]:
    req_id = f"REQ-MATRIX-{uuid.uuid4().hex[:8]}"
    produce(svc.settings, RequisitionSubmitted(
        requisition_id=req_id, title="Matrix", requester="alice", cost_center="CC-100",
        currency="EUR", total=Decimal("1000.00"),
        lines=[RequisitionLine(line_no=1, description="desk", quantity=Decimal(1),
                               unit_price=Decimal("1000.00"), amount=Decimal("1000.00"),
                               supplier_id="SUP-1")],
        submitted_at=datetime.now(UTC)), correlation_id=req_id)

    def bobs_task() -> str | None:
        r = svc.client.get("/inbox", headers=bearer("bob", "approver"))
        assert r.status_code == 200, r.text
        return next((t["task_id"] for t in r.json()["items"] if t["requisition_id"] == req_id),
                    None)

    task_id = wait_until(bobs_task, 30, message="bob's matrix task")
    return {"requisition_id": req_id, "task_id": task_id}


def real_objects(name: str, svc: RunningService) -> dict[str, str]:
    """Path parameter → id of a real object (owner alice, assignee bob) for services that need one."""
    builder = {"requisitions": _requisitions_objects, "approvals": _approvals_objects}.get(name)
    return builder(svc) if builder else {}


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
