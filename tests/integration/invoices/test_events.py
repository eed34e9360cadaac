"""invoice.received on Kafka; matching's events drive the status; POs teach supplier ids."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.contracts.invoices import InvoiceReceived
from shared.contracts.matching import (
    InvoiceAwaitingReceipt,
    InvoiceClearedForPayment,
    InvoiceExceptionRaised,
    InvoiceExceptionResolved,
    InvoiceMatched,
    InvoiceRejected,
)
from shared.contracts.requisitions import (
    PurchaseOrderIssued,
    PurchaseOrderLine,
    SupplierIdentifiers,
)
from tests.integration.invoices.conftest import post
from tests.support.kafka import TopicReader, produce
from tests.support.poll import wait_until
from tests.unit.invoices.documents import edit_ubl, native

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_intake_publishes_invoice_received_with_headers_and_payload(invoices, peppol_dir, clerk):
    xml = edit_ubl(peppol_dir / "Allowance-example.xml", {}, number="EVT-1",
                   order_reference="PO-000900")
    resp = post(invoices, xml, "application/xml", clerk)
    assert resp.status_code == 201
    invoice_id = resp.json()["id"]
    reader = TopicReader(invoices.settings, invoices.settings.topic("p2p.invoices"))
    try:
        found = wait_until(lambda: [r for r in reader.poll() if r.key == invoice_id.encode()],
                           message="invoice.received on the topic")
    finally:
        reader.close()
    assert len(found) == 1
    record = found[0]
    headers = dict(record.headers)
    assert headers["ce_type"] == b"p2p.invoice.received.v1"
    assert headers["ce_source"] == b"/p2p/invoices"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_subject"] == invoice_id.encode()
    assert headers["ce_correlationid"] == invoice_id.encode()
    assert headers["content-type"] == b"application/json"
    uuid.UUID(headers["ce_id"].decode())
    event = InvoiceReceived.model_validate_json(record.value)
    assert event.invoice_id == invoice_id
    assert event.source_format == "ubl"
    assert event.invoice_number == "EVT-1"
    assert event.order_reference == "PO-000900"
    assert event.supplier.vat_id == "GB1232434"
    assert event.supplier.peppol_id == "0088:7300010000001"
    assert [ln.po_line_no for ln in event.lines] == [None, "124", "124"]
    assert event.lines[1].unit_price == Decimal(100)
    assert (event.totals.net, event.totals.tax, event.totals.gross, event.totals.payable,
            event.totals.prepaid) == (Decimal("5900.00"), Decimal("1225.00"), Decimal("7125.00"),
                                      Decimal("6125.00"), Decimal("1000.00"))
    assert len(event.allowances_charges) == 2
    assert event.preceding_invoice is None and event.preceding_invoice_id is None
    raw = json.loads(record.value)
    assert raw["totals"]["payable"] == "6125.00"  # money is a decimal string on the wire


def _status(invoices, invoice_id: str, headers) -> str:
    return invoices.client.get(f"/invoices/{invoice_id}", headers=headers).json()["status"]


def _wait_status(invoices, invoice_id: str, status: str, headers) -> dict:
    return wait_until(
        lambda: (got := invoices.client.get(f"/invoices/{invoice_id}", headers=headers).json())
        ["status"] == status and got,
        message=f"status {status}")


def test_matching_events_drive_the_status(invoices, clerk):
    ids = []
    for n in range(3):
        resp = post(invoices, json.dumps(native(f"ST-{n}", supplier={"id": f"SUP-ST{n}"})),
                    "application/json", clerk)
        ids.append(resp.json()["id"])
    touchless, waiting, exceptional = ids
    for invoice_id in ids:  # handed over to matching first
        _wait_status(invoices, invoice_id, "matching", clerk)
    s = invoices.settings
    # Touchless: matched, then cleared.
    produce(s, InvoiceMatched(invoice_id=touchless, po_number="PO-1", match_id="m1",
                              policy_version=3, decided_at=NOW))
    got = _wait_status(invoices, touchless, "matched", clerk)
    assert got["match"]["outcome"] == "matched" and got["match"]["policy_version"] == 3
    produce(s, InvoiceClearedForPayment(invoice_id=touchless, currency="EUR",
                                        amount=Decimal("1190.00"), touchless=True, cleared_at=NOW))
    got = _wait_status(invoices, touchless, "cleared_for_payment", clerk)
    assert got["match"]["cleared"]["touchless"] is True
    assert [h["status"] for h in got["history"]] == ["received", "matching", "matched",
                                                     "cleared_for_payment"]
    # A late exception cannot reopen a cleared invoice.
    produce(s, InvoiceExceptionRaised(invoice_id=touchless, exception_id="x0", reasons=["X"],
                                      raised_at=NOW))
    # Awaiting receipt, then matched.
    produce(s, InvoiceAwaitingReceipt(invoice_id=waiting, match_id="m2", policy_version=3,
                                      lines=["1"], wait_until=NOW + timedelta(days=5),
                                      decided_at=NOW))
    got = _wait_status(invoices, waiting, "awaiting_receipt", clerk)
    assert got["match"]["lines_awaiting_receipt"] == ["1"]
    # Exception → rematch → matching → exception again → rejected.
    produce(s, InvoiceExceptionRaised(invoice_id=exceptional, exception_id="x1",
                                      reasons=["PRICE_VARIANCE", "QTY_OVER_RECEIVED"],
                                      raised_at=NOW))
    got = _wait_status(invoices, exceptional, "exception", clerk)
    assert got["match"]["reasons"] == ["PRICE_VARIANCE", "QTY_OVER_RECEIVED"]
    assert got["match"]["exception_id"] == "x1"
    produce(s, InvoiceExceptionResolved(invoice_id=exceptional, exception_id="x1",
                                        action="rematch", reason_code="receipt_posted",
                                        resolved_by="clara", resolved_at=NOW))
    _wait_status(invoices, exceptional, "matching", clerk)
    produce(s, InvoiceRejected(invoice_id=exceptional, reason_code="wrong_price",
                               rejected_by="clara", rejected_at=NOW))
    got = _wait_status(invoices, exceptional, "rejected", clerk)
    assert got["match"]["rejection"]["by"] == "clara"
    assert _status(invoices, touchless, clerk) == "cleared_for_payment"
    listed = invoices.client.get("/invoices", params={"status": "rejected"}, headers=clerk).json()
    assert [i["id"] for i in listed["items"]] == [exceptional]


def test_redelivered_and_unknown_events_change_nothing(invoices, clerk):
    resp = post(invoices, json.dumps(native("RD-1", supplier={"id": "SUP-RD"})),
                "application/json", clerk)
    invoice_id = resp.json()["id"]
    _wait_status(invoices, invoice_id, "matching", clerk)
    matched = InvoiceMatched(invoice_id=invoice_id, match_id="m9", policy_version=1,
                             decided_at=NOW)
    produce(invoices.settings, matched, event_id="11111111-1111-4111-8111-111111111111")
    produce(invoices.settings, matched, event_id="11111111-1111-4111-8111-111111111111")
    produce(invoices.settings, InvoiceMatched(invoice_id="no-such-invoice", match_id="m0",
                                              policy_version=1, decided_at=NOW))
    got = _wait_status(invoices, invoice_id, "matched", clerk)
    # The marker after the others: once it is applied, the earlier ones have been too.
    produce(invoices.settings, InvoiceClearedForPayment(invoice_id=invoice_id, currency="EUR",
                                                        amount=Decimal(1), touchless=True,
                                                        cleared_at=NOW))
    got = _wait_status(invoices, invoice_id, "cleared_for_payment", clerk)
    assert [h["status"] for h in got["history"]] == ["received", "matching", "matched",
                                                     "cleared_for_payment"]


def test_purchase_orders_teach_the_supplier_id_of_vat_only_invoices(invoices, clerk):
    # An invoice that names its supplier only by VAT id, before the PO is known: no supplier id.
    early = post(invoices, json.dumps(native("PO-LEARN-1", supplier={"vat_id": "FR40303265045"})),
                 "application/json", clerk)
    assert early.status_code == 201 and early.json()["supplier_id"] is None
    produce(invoices.settings, PurchaseOrderIssued(
        po_id="po-1", po_number="PO-000555", requisition_id="req-1", requester="rita",
        cost_center="CC-100", supplier_id="SUP-FR",
        supplier_identifiers=SupplierIdentifiers(id="SUP-FR", vat_id="FR 40303265045",
                                                 peppol_id="0009:30326504500015"),
        currency="EUR",
        lines=[PurchaseOrderLine(line_no=1, description="x", quantity=Decimal(1),
                                 unit_price=Decimal(1))]))
    # The earlier invoice is backfilled, and later ones resolve at intake.
    wait_until(lambda: invoices.client.get("/invoices", params={"supplier_id": "SUP-FR"},
                                           headers=clerk).json()["items"],
               message="the backfilled supplier id")
    late = post(invoices, json.dumps(native("PO-LEARN-2", supplier={"peppol_id": "0009:30326504500015"},
                                            gross="2380.00")),
                "application/json", clerk)
    assert late.status_code == 201
    assert late.json()["supplier_id"] == "SUP-FR"
    listed = invoices.client.get("/invoices", params={"supplier_id": "SUP-FR"},
                                 headers=clerk).json()["items"]
    assert {i["invoice_number"] for i in listed} == {"PO-LEARN-1", "PO-LEARN-2"}
    # Now the PEPPOL-only and the VAT-only invoice are one supplier: a repeat is a duplicate.
    again = post(invoices, json.dumps(native("PO LEARN 1", supplier={"id": "SUP-FR"})),
                 "application/json", clerk)
    assert again.status_code == 409
    assert again.json()["existing_id"] == early.json()["id"]
