"""The requisitions service running in-process against the real PostgreSQL and broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.requisitions.app import create_app
from shared.contracts.approvals import ApprovalDecided
from tests.support.auth import bearer
from tests.support.kafka import TopicReader, produce
from tests.support.poll import wait_until
from tests.support.stack import RunningService, run_service, service_engine

ADMIN = bearer("root", "admin")
ALICE = bearer("alice", "requester")
BOB = bearer("bob", "requester")
RECEIVER = bearer("rita", "receiver")
AUDITOR = bearer("audrey", "auditor")
APPROVER = bearer("ivan", "approver")

SUPPLIERS = [
    {"id": "SUP-ACME", "name": "Acme GmbH", "vat_id": "DE123456789",
     "peppol_id": "0088:9482348239847239874", "identifiers": ["0192:987654321"], "currency": "EUR"},
    {"id": "SUP-GLOBEX", "name": "Globex AB", "vat_id": "SE556677889901",
     "peppol_id": "0007:5566778899"},
]


def requisition_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "title": "Laptops and support",
        "cost_center": "CC-100",
        "currency": "EUR",
        "needed_by": "2026-12-31",
        "lines": [
            {"description": "Laptop", "category": "IT", "quantity": "2", "uom": "EA",
             "unit_price": "1200.50", "supplier_id": "SUP-ACME"},
            {"description": "Docking station", "category": "IT", "quantity": "2",
             "unit_price": "199.99", "supplier_id": "SUP-ACME"},
            {"description": "Setup service", "category": "Services", "quantity": "3",
             "uom": "HUR", "unit_price": "85", "supplier_id": "SUP-GLOBEX",
             "receipt_required": False},
        ],
    }
    body.update(overrides)
    return body


@dataclass
class Ctx:
    svc: RunningService
    engine: Engine

    @property
    def client(self):
        return self.svc.client

    @property
    def settings(self):
        return self.svc.settings

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    def outbox_count(self, ce_type: str | None = None) -> int:
        if ce_type is None:
            return self.scalar("SELECT count(*) FROM outbox")
        return self.scalar("SELECT count(*) FROM outbox WHERE event_type = :t", t=ce_type)

    def snapshot(self) -> dict[str, int]:
        """Row counts of every table: a refused request must leave them all unchanged."""
        tables = ("suppliers", "requisitions", "requisition_lines", "requisition_history",
                  "purchase_orders", "po_lines", "receipts", "receipt_lines", "outbox")
        return {t: self.scalar(f"SELECT count(*) FROM {t}") for t in tables}

    def create(self, headers: dict[str, str] = ALICE, **overrides: Any) -> dict[str, Any]:
        r = self.client.post("/requisitions", json=requisition_body(**overrides), headers=headers)
        assert r.status_code == 201, r.text
        return r.json()

    def submit(self, req_id: str, headers: dict[str, str] = ALICE) -> dict[str, Any]:
        r = self.client.post(f"/requisitions/{req_id}/submit", headers=headers)
        assert r.status_code == 202, r.text
        return r.json()

    def ordered(self, headers: dict[str, str] = ALICE, **overrides: Any) -> dict[str, Any]:
        """A requisition taken through submit and approval to `ordered`."""
        req = self.create(headers, **overrides)
        self.submit(req["id"], headers)
        self.decide(req["id"])
        return wait_until(lambda: (r := self.get(req["id"], headers))["status"] == "ordered" and r,
                          message="the requisition to be ordered")

    def po(self, ref: str, headers: dict[str, str] = RECEIVER) -> dict[str, Any]:
        r = self.client.get(f"/purchase-orders/{ref}", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    def decide(self, req_id: str, outcome: str = "approved", submission: int = 1,
               event_id: str | None = None, comment: str | None = None) -> None:
        produce(self.settings, ApprovalDecided(
            requisition_id=req_id, outcome=outcome, decided_by=["bob"], policy_version=1,
            decided_at=datetime.now(UTC), comment=comment, submission=submission,
        ), event_id=event_id, correlation_id=req_id)

    def get(self, req_id: str, headers: dict[str, str] = ALICE) -> dict[str, Any]:
        r = self.client.get(f"/requisitions/{req_id}", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    def consumed(self, event_id: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM inbox WHERE event_id = :e", e=event_id))

    def reader(self, topic: str) -> TopicReader:
        return TopicReader(self.settings, self.settings.topic(topic))


def start(settings) -> Iterator[Ctx]:
    with run_service(create_app, settings) as svc:
        engine = service_engine(settings, "requisitions")
        for s in SUPPLIERS:
            r = svc.client.post("/suppliers", json=s, headers=ADMIN)
            assert r.status_code == 201, r.text
        try:
            yield Ctx(svc=svc, engine=engine)
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def ctx(infra) -> Iterator[Ctx]:
    """One running service per test module (tests use their own requisitions)."""
    yield from start(infra.settings())


def assert_problem(r, status: int, path: str | None = None, rule: str | None = None,
                   mention: str | None = None) -> dict[str, Any]:
    """A problem+json answer with `status`, naming `path`/`rule` or mentioning `mention`."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    if path is not None:
        named = [(e["path"], e["rule"]) for e in body.get("errors") or []]
        assert any(p == path and (rule is None or ru == rule) for p, ru in named), (path, rule, body)
    if mention is not None:
        assert mention in body["detail"], body
    return body


@contextmanager
def unchanged(ctx: Ctx) -> Iterator[None]:
    """The block's requests must leave every table (and so the outbox: no event) as it was."""
    before = ctx.snapshot()
    yield
    assert ctx.snapshot() == before
