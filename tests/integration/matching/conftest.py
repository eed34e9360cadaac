"""Fixtures for the matching service: documents as the other services would emit them."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from services.matching.app import create_app
from shared.contracts.invoices import InvoiceReceived
from shared.contracts.requisitions import GoodsReceiptRecorded, PurchaseOrderIssued
from tests.support.auth import bearer
from tests.support.poll import wait_until
from tests.support.stack import run_service, service_engine

CLERK = bearer("clara", "ap_clerk")
ADMIN = bearer("adam", "admin")
AUDITOR = bearer("audrey", "auditor")


def po_issued(po_number: str, *, requester: str = "alice", supplier_id: str = "SUP-1",
              lines: list[dict] | None = None, currency: str = "EUR") -> PurchaseOrderIssued:
    lines = lines or [
        {"line_no": 1, "description": "Laptop 14 inch", "quantity": "10", "unit_price": "100.00",
         "category": "HW"},
        {"line_no": 2, "description": "Consulting day", "quantity": "5", "unit_price": "800.00",
         "receipt_required": False},
    ]
    return PurchaseOrderIssued(
        po_id=f"id-{po_number}", po_number=po_number, requisition_id=f"REQ-{po_number}",
        requester=requester, cost_center="CC-100", supplier_id=supplier_id,
        supplier_identifiers={"id": supplier_id, "vat_id": "DE123456789",
                              "peppol_id": "0088:4000001000005"},
        currency=currency, lines=lines, issued_at=datetime.now(UTC))


def receipt(po_number: str, lines: dict[int, str], receipt_id: str | None = None) -> GoodsReceiptRecorded:
    return GoodsReceiptRecorded(
        receipt_id=receipt_id or str(uuid.uuid4()), po_id=f"id-{po_number}", po_number=po_number,
        lines=[{"line_no": n, "quantity": q} for n, q in lines.items()],
        received_at=datetime.now(UTC))


def invoice(po_number: str | None, lines: list[tuple[str | None, str, str]], *,
            invoice_id: str | None = None, supplier: dict | None = None, flags: list[str] | None = None,
            type_: str = "invoice", preceding: str | None = None, currency: str = "EUR",
            extra_net: str = "0") -> InvoiceReceived:
    """lines: (po_line_no, quantity, unit_price)."""
    body = []
    for i, (po_line, qty, price) in enumerate(lines, start=1):
        body.append({"line_no": str(i), "description": f"item {po_line}", "quantity": qty,
                     "unit_price": price, "net_amount": str(Decimal(qty) * Decimal(price)),
                     "po_line_no": po_line})
    net = sum((Decimal(b["net_amount"]) for b in body), Decimal(0)) + Decimal(extra_net)
    tax = (net * Decimal("0.19")).quantize(Decimal("0.01"))
    return InvoiceReceived(
        invoice_id=invoice_id or str(uuid.uuid4()), source_format="json", type=type_,
        invoice_number=f"INV-{uuid.uuid4().hex[:8]}", issue_date=datetime.now(UTC).date(),
        currency=currency, supplier=supplier or {"vat_id": "DE 123 456 789"},
        order_reference=po_number, preceding_invoice_id=preceding, lines=body,
        totals={"net": str(net), "tax": str(tax), "gross": str(net + tax), "payable": str(net + tax)},
        flags=flags or [], received_at=datetime.now(UTC))


WAITS = {"receipt_wait": "PT60S", "po_wait": "PT60S"}


def write_policy(path: Path, *, receipt_wait: str, po_wait: str) -> Path:
    path.write_text(
        "default: {price_pct: '2', price_abs: '5.00', price_rule: either,\n"
        "          qty_over_ordered_pct: '0', qty_over_received_pct: '0', total_abs: '1.00'}\n"
        "suppliers: {SUP-2: {price_pct: '10'}}\n"
        f"receipt_wait: {receipt_wait}\npo_wait: {po_wait}\n")
    return path


@pytest.fixture
def tolerances_file(tmp_path: Path) -> Path:
    """Long waits: nothing times out by accident. Tests of deadlines write their own."""
    return write_policy(tmp_path / "tolerances.yaml", **WAITS)


@pytest.fixture
def matching_settings(infra, tolerances_file):
    return infra.settings(tolerances=tolerances_file)


@pytest.fixture
def matching(matching_settings):
    """One consumer thread: joins its group fastest."""
    with run_service(functools.partial(create_app, sweep_interval=0.2, consumers=1),
                     matching_settings) as svc:
        yield svc


@pytest.fixture
def matching_group(matching_settings):
    """Three consumer threads in one group, as deployed: PO and invoice partitions are
    handled concurrently by different members."""
    with run_service(functools.partial(create_app, sweep_interval=0.2, consumers=3),
                     matching_settings) as svc:
        assert len(svc.runtime.consumers) == 3
        yield svc


def match_of(svc, invoice_id: str) -> dict | None:
    r = svc.client.get(f"/matches/{invoice_id}", headers=CLERK)
    return r.json() if r.status_code == 200 else None


def wait_status(svc, invoice_id: str, status: str, timeout: float = 30.0) -> dict:
    def reached():
        m = match_of(svc, invoice_id)
        return m if m is not None and m["status"] == status else None

    return wait_until(reached, timeout, message=f"invoice {invoice_id} {status} "
                      f"(last: {(match_of(svc, invoice_id) or {}).get('status')})")


def open_exception(svc, invoice_id: str) -> dict:
    items = svc.client.get("/exceptions?limit=500", headers=CLERK).json()["items"]
    found = [e for e in items if e["invoice_id"] == invoice_id]
    assert len(found) == 1, found
    return found[0]


def db_scalar(settings, sql: str, **params):
    engine = service_engine(settings, "matching")
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def wait_receipts(settings, po_number: str, count: int = 1) -> None:
    """PO and invoice topics are consumed independently: let the receipts land first when a
    test needs an invoice to see them."""
    wait_until(lambda: db_scalar(settings, "SELECT count(*) FROM receipts WHERE po_number = :p",
                                 p=po_number) >= count, 20, message=f"receipts of {po_number}")
