"""Deadlines: po_wait and receipt_wait expire into exceptions, and survive a restart."""

from __future__ import annotations

import functools

import pytest

from services.matching.app import create_app
from tests.integration.matching.conftest import (
    invoice,
    open_exception,
    po_issued,
    receipt,
    wait_status,
    write_policy,
)
from tests.support.kafka import produce
from tests.support.stack import run_service

pytestmark = pytest.mark.integration


@pytest.fixture
def short_waits(infra, tmp_path):
    return infra.settings(tolerances=write_policy(tmp_path / "t.yaml", receipt_wait="PT1S",
                                                  po_wait="PT1S"))


def _failed(m: dict) -> list[str]:
    return [c["rule"] for c in m["checks"] if not c["passed"]]


def test_deadlines_turn_waiting_invoices_into_exceptions(short_waits):
    s = short_waits
    with run_service(functools.partial(create_app, sweep_interval=0.2, consumers=1), s) as svc:
        no_ref = invoice(None, [(None, "1", "10.00")])
        produce(s, no_ref)
        m = wait_status(svc, no_ref.invoice_id, "exception")
        assert m["trigger"] == "invoice_received" and _failed(m) == ["PO_NOT_FOUND"]

        unknown = invoice("PO-999999", [("1", "1", "10.00")])
        produce(s, unknown)
        m = wait_status(svc, unknown.invoice_id, "exception", timeout=20)
        assert m["trigger"] == "deadline" and _failed(m) == ["PO_NOT_FOUND"]
        assert open_exception(svc, unknown.invoice_id)["reasons"] == ["PO_NOT_FOUND"]

        produce(s, po_issued("PO-500001"))
        produce(s, receipt("PO-500001", {1: "2"}))
        short = invoice("PO-500001", [("1", "5", "100.00")])
        produce(s, short)
        m = wait_status(svc, short.invoice_id, "exception", timeout=20)
        assert m["trigger"] == "deadline"
        assert _failed(m) == ["QTY_OVER_RECEIVED", "MISSING_RECEIPT"]
        assert open_exception(svc, short.invoice_id)["reasons"] == ["MISSING_RECEIPT"]


def test_a_deadline_survives_a_restart(infra, tmp_path):
    s = infra.settings(tolerances=write_policy(tmp_path / "t.yaml", receipt_wait="PT60S",
                                               po_wait="PT4S"))
    slow = functools.partial(create_app, sweep_interval=0.2, consumers=1)
    inv = invoice("PO-600001", [("1", "1", "10.00")])
    with run_service(slow, s) as svc:
        produce(s, inv)
        assert wait_status(svc, inv.invoice_id, "awaiting_po")["outcome"] == "awaiting_po"
    with run_service(slow, s) as svc:  # a new process: only the database remembers the wait
        m = wait_status(svc, inv.invoice_id, "exception", timeout=30)
        assert m["trigger"] == "deadline" and _failed(m) == ["PO_NOT_FOUND"]


def test_a_po_arriving_within_po_wait_is_matched(infra, tmp_path):
    s = infra.settings(tolerances=write_policy(tmp_path / "t.yaml", receipt_wait="PT60S",
                                               po_wait="PT60S"))
    with run_service(functools.partial(create_app, sweep_interval=0.2, consumers=1), s) as svc:
        inv = invoice("PO-700001", [("2", "1", "800.00")])
        produce(s, inv)
        wait_status(svc, inv.invoice_id, "awaiting_po")
        produce(s, po_issued("PO-700001"))
        m = wait_status(svc, inv.invoice_id, "cleared")
        assert m["outcome"] == "matched" and m["trigger"] == "purchase_order_issued"
