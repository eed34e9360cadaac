"""Every kind of exception an AP clerk meets, from the invoice that causes it to its
resolution, over HTTP only."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from shared.cli.demo import documents as docs
from shared.cli.demo.world import PEPPOL_EXAMPLE_SUPPLIER
from tests.e2e.flow import flows
from tests.support.poll import wait_until

pytestmark = pytest.mark.e2e

ACME = flows.SUPPLIERS["SUP-ACME"]


def _po(api, supplier_id: str = "SUP-CONTOSO", receive: bool = True) -> dict:
    """A small PO (auto-approved), received in full unless told otherwise. Quantities differ
    from PO to PO: equal amounts from one supplier within days would (rightly) be flagged as
    suspected duplicates of each other."""
    n = flows.next_seq()
    po = flows.auto_approved_po(api, supplier_id, [
        flows.line("Desk lamp", "2", "89.00", supplier_id),
        flows.line("Whiteboard markers, pack of 12", str(n), "11.90", supplier_id, uom="XPK"),
    ])
    return flows.receive(api, po) if receive else po


def _raise(api, doc: docs.InvoiceDoc, reason: str, fmt: str = "json") -> tuple[dict, dict]:
    created = flows.send_doc(api, doc, fmt)
    exc = flows.wait_exception(api, created["id"])
    assert reason in exc["reasons"], exc
    flows.wait_invoice(api, created["id"], {"exception"})
    detail = api.get("matching", f"/exceptions/{exc['id']}", user=flows.CLERK[0],
                     roles=flows.CLERK[1])
    failed = {c["rule"] for c in detail["checks"]}
    assert reason in failed or reason == "DUPLICATE_SUSPECTED", detail["checks"]
    return created, exc


def _once_matching_has_the_receipt(api, exc: dict, invoice_id: str, expected: list[str]
                                   ) -> dict:
    """Receipts reach matching as events, invoices too, on different topics: an invoice can be
    matched before a receipt posted just before it. The clerk then re-runs the match (the
    exception stays open, with the reasons left) until the receipt is seen."""
    if exc["reasons"] == expected:
        return exc

    def rematched() -> dict | None:
        out = flows.resolve(api, exc["id"], "rematch", "RECEIPT_POSTED")
        assert out["match_outcome"] == "exception" and out["status"] == "open", out
        left = flows.wait_exception(api, invoice_id)
        assert set(left["reasons"]) <= set(expected) | {"QTY_OVER_RECEIVED"}, left
        return left if left["reasons"] == expected else None

    return wait_until(rematched, 30, interval=0.5, message="a rematch that sees the receipt")


def _finish(api, invoice_id: str, exception_id: str, status: str, action: str) -> None:
    invoice = flows.wait_invoice(api, invoice_id, {status})
    assert invoice["status"] == status
    final = api.get("matching", f"/exceptions/{exception_id}", user=flows.CLERK[0],
                    roles=flows.CLERK[1])
    assert final["status"] == "resolved"
    assert final["resolution"]["action"] == action
    assert final["resolved_at"]
    assert flows.exceptions_of(api, invoice_id, "open") == []


def test_price_variance_accepted_by_the_clerk_is_cleared(api):
    po = _po(api)
    created, exc = _raise(api, flows.invoice_doc(po, price_factor=Decimal("1.25")),
                          "PRICE_VARIANCE", "cii")
    out = flows.resolve(api, exc["id"], "accept", "PRICE_AGREED", "new list price confirmed")
    assert out["status"] == "resolved"
    _finish(api, created["id"], exc["id"], "cleared_for_payment", "accept")
    flows.resolve(api, exc["id"], "accept", "PRICE_AGREED", ok=(409,))  # resolving twice


def test_over_billing_waits_for_the_credit_note_then_clears(api):
    po = _po(api)
    doc = flows.invoice_doc(po, extra_qty=Decimal("3"))
    created, exc = _raise(api, doc, "QTY_OVER_ORDERED", "ubl")
    out = flows.resolve(api, exc["id"], "request_credit_note", "OVERBILLED")
    assert out["status"] == "waiting_supplier"
    assert flows.get_invoice(api, created["id"])["status"] == "exception"
    first = doc.lines[0]
    credit = docs.InvoiceDoc(
        number=flows.invoice_number("CN"), issue_date=doc.issue_date + timedelta(days=2),
        currency=doc.currency, supplier=doc.supplier, type="credit_note",
        preceding_invoice=doc.number, order_reference=doc.order_reference,
        tax_rate=doc.tax_rate,
        lines=(docs.DocLine("1", first.description, Decimal("3"), first.unit_price, first.uom,
                            first.po_line_no),))
    cn = flows.send_doc(api, credit, "ubl")
    flows.wait_invoice(api, cn["id"], {"cleared_for_payment", "matched"})
    invoice = flows.wait_invoice(api, created["id"], {"cleared_for_payment"})
    assert invoice["status"] == "cleared_for_payment"
    final = api.get("matching", f"/exceptions/{exc['id']}", user=flows.CLERK[0],
                    roles=flows.CLERK[1])
    assert final["status"] == "resolved"
    assert "credit_note_received" in [h["action"] for h in final["history"]]


def test_an_invoice_quoting_another_suppliers_po_is_rejected(api):
    po = _po(api, "SUP-CONTOSO")
    created, exc = _raise(api, flows.invoice_doc(po, supplier=ACME), "SUPPLIER_MISMATCH",
                          "facturx")
    flows.resolve(api, exc["id"], "reject", "WRONG_PO", "returned to the supplier")
    _finish(api, created["id"], exc["id"], "rejected", "reject")


def test_an_invoice_in_the_wrong_currency_is_rejected(api):
    po = _po(api)
    created, exc = _raise(api, flows.invoice_doc(po, currency="USD"), "CURRENCY_MISMATCH")
    flows.resolve(api, exc["id"], "reject", "WRONG_CURRENCY")
    _finish(api, created["id"], exc["id"], "rejected", "reject")


def test_an_invoice_without_a_po_is_rejected(api):
    po = _po(api)
    created, exc = _raise(api, flows.invoice_doc(po, order_reference=None), "PO_NOT_FOUND")
    flows.resolve(api, exc["id"], "reject", "NO_PO")
    _finish(api, created["id"], exc["id"], "rejected", "reject")


def test_an_invoice_for_a_closed_po_is_rejected(api):
    po = _po(api, receive=False)
    api.post("requisitions", f"/purchase-orders/{po['number']}/close", user="alice",
             roles=("requester",), json={"reason": "cancelled"})
    assert flows.purchase_order(api, po["number"])["status"] in ("closed", "cancelled")
    created, exc = _raise(api, flows.invoice_doc(po), "PO_CLOSED")
    flows.resolve(api, exc["id"], "reject", "PO_CLOSED")
    _finish(api, created["id"], exc["id"], "rejected", "reject")


def test_a_line_that_is_not_on_the_po_is_rejected(api):
    po = _po(api)
    extra = docs.DocLine("3", "Gold-plated HDMI cable, 10 m", Decimal("4"), Decimal("79.00"),
                         "EA", "9")
    created, exc = _raise(api, flows.invoice_doc(po, extra_lines=(extra,)), "LINE_NOT_ON_PO",
                          "json")
    flows.resolve(api, exc["id"], "reject", "NOT_ORDERED")
    _finish(api, created["id"], exc["id"], "rejected", "reject")


def test_a_document_charge_beyond_the_header_tolerance_is_accepted(api, base_example):
    """The real PEPPOL example keeps its 25.00 insurance charge: the invoice net exceeds the
    matched lines by more than `total_abs`."""
    po = _po(api, "SUP-PEPPOL")
    xml = docs.ubl_from_example(
        base_example, number=flows.invoice_number("PEPPOL"), issue_date=date.today(),
        po_number=po["number"], supplier=PEPPOL_EXAMPLE_SUPPLIER, keep_charges=True,
        lines=[docs.DocLine(str(ln["line_no"]), ln["description"],
                            Decimal(ln["ordered_quantity"]), Decimal(ln["unit_price"]),
                            ln["uom"], str(ln["line_no"])) for ln in po["lines"]])
    created = flows.send(api, xml, "application/xml")
    exc = flows.wait_exception(api, created["id"])
    assert "TOTAL_VARIANCE" in exc["reasons"], exc
    exc = _once_matching_has_the_receipt(api, exc, created["id"], ["TOTAL_VARIANCE"])
    flows.resolve(api, exc["id"], "accept", "CHARGE_AGREED", "insurance agreed by phone")
    _finish(api, created["id"], exc["id"], "cleared_for_payment", "accept")


def test_a_suspected_duplicate_is_flagged_and_rejected(api):
    po = _po(api)
    original = flows.invoice_doc(po)
    first = flows.send_doc(api, original, "json")
    assert flows.wait_invoice(api, first["id"], {"cleared_for_payment"})
    # The exact same invoice again is refused at intake.
    again = flows.send(api, *docs.encode(original, "ubl"), ok=(409,))
    assert again["existing_id"] == first["id"]
    # The same amount with a near-identical number two days later is let in, but flagged.
    twin = original.renumbered(original.number + "B", original.issue_date + timedelta(days=2))
    created, exc = _raise(api, twin, "DUPLICATE_SUSPECTED")
    invoice = flows.get_invoice(api, created["id"])
    assert "suspected_duplicate" in invoice["flags"] and invoice["duplicate_of"] == first["id"]
    flows.resolve(api, exc["id"], "reject", "DUPLICATE")
    _finish(api, created["id"], exc["id"], "rejected", "reject")
    assert flows.get_invoice(api, first["id"])["status"] == "cleared_for_payment"


def test_missing_receipt_after_the_wait_then_rematch_clears(api):
    """With a short `receipt_wait` (a new tolerance version, restored afterwards), an invoice
    whose goods never came becomes a MISSING_RECEIPT exception; once the receipt is posted the
    clerk re-runs the match and it clears."""
    current = api.get("matching", "/tolerances", user=flows.ADMIN[0], roles=flows.ADMIN[1])
    short = {**current["policy"], "receipt_wait": "PT2S"}
    put = api.request("matching", "PUT", "/tolerances", user=flows.ADMIN[0],
                      roles=flows.ADMIN[1], json=short).json()
    assert put["version"] > current["version"]
    try:
        po = _po(api, receive=False)
        created = flows.send_doc(api, flows.invoice_doc(po), "json")
        flows.wait_invoice(api, created["id"], {"awaiting_receipt"})
        exc = flows.wait_exception(api, created["id"], timeout=60)
        assert exc["reasons"] == ["MISSING_RECEIPT"], exc
    finally:
        api.request("matching", "PUT", "/tolerances", user=flows.ADMIN[0], roles=flows.ADMIN[1],
                    json=current["policy"])
    flows.receive(api, po)
    flows.resolve(api, exc["id"], "rematch", "RECEIPT_POSTED")
    _finish(api, created["id"], exc["id"], "cleared_for_payment", "rematch")


def test_billing_ahead_of_the_goods_with_a_price_rise_is_rematched_then_accepted(api):
    """Price outside tolerance AND goods not yet received: an exception naming both (not a
    wait). Once the goods are in, the clerk re-runs the match: only the price is left, which
    the clerk accepts."""
    po = _po(api, receive=False)
    created, exc = _raise(api, flows.invoice_doc(po, price_factor=Decimal("1.30")),
                          "QTY_OVER_RECEIVED", "ubl")
    assert set(exc["reasons"]) == {"PRICE_VARIANCE", "QTY_OVER_RECEIVED"}, exc
    flows.receive(api, po)
    left = _once_matching_has_the_receipt(api, exc, created["id"], ["PRICE_VARIANCE"])
    flows.resolve(api, left["id"], "accept", "PRICE_AGREED")
    invoice = flows.wait_invoice(api, created["id"], {"cleared_for_payment"})
    assert invoice["status"] == "cleared_for_payment"
    assert flows.exceptions_of(api, created["id"], "open") == []
