"""Events in, decisions out: arrival orders, waiting for receipts, redelivery."""

from __future__ import annotations

import itertools
import json

import pytest
from prometheus_client import REGISTRY

from shared.contracts.invoices import InvoiceReceived
from shared.contracts.matching import (
    InvoiceAwaitingReceipt,
    InvoiceClearedForPayment,
    InvoiceExceptionRaised,
    InvoiceMatched,
)
from shared.contracts.requisitions import GoodsReceiptRecorded
from tests.integration.matching.conftest import (
    db_scalar,
    match_of,
    invoice,
    po_issued,
    receipt,
    wait_status,
)
from tests.support.kafka import TopicReader, produce
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration


def _events(settings, invoice_id: str) -> list[str]:
    reader = TopicReader(settings, settings.topic("p2p.matching"))
    try:
        return [e.type for e in reader.envelopes() if e.subject == invoice_id]
    finally:
        reader.close()


def _settled(ce_type: str) -> float:
    """Deliveries of `ce_type` the consumers have settled in this process (any outcome)."""
    return sum(REGISTRY.get_sample_value("p2p_events_consumed_total",
                                         {"topic": topic, "type": ce_type, "outcome": outcome}) or 0
               for topic in ("p2p.purchase-orders", "p2p.invoices")
               for outcome in ("processed", "duplicate"))


def _normalised_checks(m: dict) -> str:
    return json.dumps(m["checks"], sort_keys=True).replace(m["po_number"], "PO")


def test_every_arrival_order_reaches_the_same_final_decision(matching_group, matching_settings):
    matching = matching_group
    s = matching_settings
    results = {}
    for n, order in enumerate(itertools.permutations(("po", "receipt", "invoice"))):
        po_number = f"PO-1000{n:02d}"
        inv = invoice(po_number, [("1", "10", "101.00"), ("2", "5", "800.00")])
        docs = {"po": po_issued(po_number), "receipt": receipt(po_number, {1: "10"}),
                "invoice": inv}
        for name in order:
            produce(s, docs[name])
        results[order] = (inv.invoice_id, po_number)
    decisions = {order: wait_status(matching, inv_id, "cleared") for order, (inv_id, _) in results.items()}
    assert {d["outcome"] for d in decisions.values()} == {"matched"}
    assert len({_normalised_checks(d) for d in decisions.values()}) == 1
    for inv_id, _ in results.values():
        types = wait_until(lambda i=inv_id: (t := _events(s, i)) and InvoiceClearedForPayment.ce_type in t and t,
                           20, message="cleared event")
        assert types.count(InvoiceMatched.ce_type) == 1
        assert types.count(InvoiceClearedForPayment.ce_type) == 1
        assert InvoiceExceptionRaised.ce_type not in types


def test_an_invoice_before_its_receipt_waits_and_matches_when_the_goods_arrive(matching, matching_settings):
    s = matching_settings
    produce(s, po_issued("PO-200001"))
    produce(s, receipt("PO-200001", {1: "4"}))
    inv = invoice("PO-200001", [("1", "10", "100.00")])
    produce(s, inv)
    def waiting_on_four():  # the first receipt may be applied just after the invoice
        m = wait_status(matching, inv.invoice_id, "awaiting_receipt")
        short = [(c["rule"], c["expected"], c["actual"]) for c in m["checks"] if not c["passed"]]
        return m if short == [("QTY_OVER_RECEIVED", "4", "10")] else None

    waiting = wait_until(waiting_on_four, 20, message="awaiting 6 more units")
    assert waiting["outcome"] == "awaiting_receipt" and waiting["wait_until"]
    produce(s, receipt("PO-200001", {1: "3"}))  # still short: 7 of 10
    produce(s, receipt("PO-200001", {1: "3"}))
    done = wait_status(matching, inv.invoice_id, "cleared")
    assert done["outcome"] == "matched" and done["trigger"] == "goods_receipt_recorded"
    types = wait_until(lambda: (t := _events(s, inv.invoice_id)) and len(t) >= 3 and t, 20,
                       message="events")
    assert types == [InvoiceAwaitingReceipt.ce_type, InvoiceMatched.ce_type,
                     InvoiceClearedForPayment.ce_type]


def test_partial_invoices_share_the_received_quantity(matching, matching_settings):
    s = matching_settings
    produce(s, po_issued("PO-300001"))
    produce(s, receipt("PO-300001", {1: "6"}))
    first = invoice("PO-300001", [("1", "6", "100.00")])
    produce(s, first)
    wait_status(matching, first.invoice_id, "cleared")
    second = invoice("PO-300001", [("1", "4", "100.00")])
    produce(s, second)
    wait_status(matching, second.invoice_id, "awaiting_receipt")
    produce(s, receipt("PO-300001", {1: "4"}))
    assert wait_status(matching, second.invoice_id, "cleared")["outcome"] == "matched"
    third = invoice("PO-300001", [("1", "1", "100.00")])
    produce(s, third)
    over = wait_status(matching, third.invoice_id, "exception")
    assert {c["rule"] for c in over["checks"] if not c["passed"]} == {"QTY_OVER_ORDERED", "QTY_OVER_RECEIVED"}


def test_redelivered_and_repeated_events_give_one_decision(matching_group, matching_settings):
    matching = matching_group
    s = matching_settings
    before = {t: _settled(t) for t in (GoodsReceiptRecorded.ce_type, InvoiceReceived.ce_type)}
    produce(s, po_issued("PO-400001"))
    rec = receipt("PO-400001", {1: "10"}, receipt_id="R-400001")
    env = produce(s, rec)
    produce(s, rec, event_id=env.id)  # redelivery of the same event
    produce(s, rec)  # the same receipt again under a new event id
    inv = invoice("PO-400001", [("1", "10", "100.00")])
    inv_env = produce(s, inv)
    produce(s, inv, event_id=inv_env.id)
    produce(s, inv)
    wait_status(matching, inv.invoice_id, "cleared")
    wait_until(lambda: all(_settled(t) - n == 3 for t, n in before.items()), 30,
               message="all three deliveries of the receipt and the invoice settled")
    # Members handle the PO and invoice topics concurrently: the invoice may have waited for
    # its PO or receipt first (a non-final decision), but it has exactly one final decision.
    assert db_scalar(s, "SELECT count(*) FROM match_decisions WHERE invoice_id = :i "
                        "AND outcome IN ('matched', 'exception')", i=inv.invoice_id) == 1
    assert db_scalar(s, "SELECT count(*) FROM receipts WHERE po_number = 'PO-400001'") == 1
    types = _events(s, inv.invoice_id)
    assert types.count(InvoiceMatched.ce_type) == 1 and types.count(InvoiceClearedForPayment.ce_type) == 1


def test_a_later_misdirected_invoice_never_counts_against_an_earlier_waiting_one(matching, matching_settings):
    """First come, first served: B (another supplier's invoice quoting the same PO line) is an
    exception that counts its quantity on the PO; A, which arrived first and waits for the
    goods, must still match when they arrive, not be over-invoiced by B."""
    s = matching_settings
    produce(s, po_issued("PO-400001"))
    first = invoice("PO-400001", [("1", "10", "100.00")])
    produce(s, first)
    wait_status(matching, first.invoice_id, "awaiting_receipt")
    misdirected = invoice("PO-400001", [("1", "10", "100.00")],
                          supplier={"vat_id": "FR 40 303 265 045", "name": "Someone Else SA"})
    produce(s, misdirected)
    raised = wait_status(matching, misdirected.invoice_id, "exception")
    assert "SUPPLIER_MISMATCH" in {c["rule"] for c in raised["checks"] if not c["passed"]}
    assert db_scalar(s, "SELECT sum(quantity) FROM invoiced_lines WHERE invoice_id = :i",
                     i=misdirected.invoice_id) == 10  # it does count on the PO line
    produce(s, receipt("PO-400001", {1: "10"}))
    done = wait_status(matching, first.invoice_id, "cleared")
    assert done["outcome"] == "matched" and done["trigger"] == "goods_receipt_recorded"
    assert match_of(matching, misdirected.invoice_id)["outcome"] == "exception"
