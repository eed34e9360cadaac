"""The exceptions queue over HTTP: filters, pagination, assignment, every action, 409, 403."""

from __future__ import annotations

import pytest

from shared.contracts.matching import (
    InvoiceClearedForPayment,
    InvoiceExceptionResolved,
    InvoiceRejected,
)
from tests.integration.matching.conftest import (
    ADMIN,
    AUDITOR,
    CLERK,
    invoice,
    open_exception,
    po_issued,
    receipt,
    wait_receipts,
    wait_status,
)
from tests.support.auth import bearer
from tests.support.kafka import TopicReader, produce
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration

ALICE_CLERK = bearer("alice", "ap_clerk")  # alice requested the goods on every PO here


def _data(settings, ce_type: str, invoice_id: str) -> list[dict]:
    reader = TopicReader(settings, settings.topic("p2p.matching"))
    try:
        return [e.data for e in reader.envelopes() if e.type == ce_type and e.subject == invoice_id]
    finally:
        reader.close()


@pytest.fixture
def queue(matching, matching_settings):
    """Four exceptions: price (SUP-1), duplicate (SUP-1), over-ordered (SUP-1), no PO."""
    s = matching_settings
    produce(s, po_issued("PO-800001"))
    produce(s, receipt("PO-800001", {1: "12"}))
    wait_receipts(s, "PO-800001")
    price = invoice("PO-800001", [("1", "2", "120.00")])
    dup = invoice("PO-800001", [("2", "1", "800.00")], flags=["suspected_duplicate"])
    over = invoice("PO-800001", [("1", "11", "100.00")])
    no_po = invoice(None, [(None, "1", "50.00")], supplier={"id": "SUP-7"})
    ids = {}
    for name, inv in (("price", price), ("dup", dup), ("over", over), ("no_po", no_po)):
        produce(s, inv)
        wait_status(matching, inv.invoice_id, "exception")
        ids[name] = open_exception(matching, inv.invoice_id)
    return ids


def test_filters_and_pagination(matching, queue):
    c = matching.client
    assert {e["id"] for e in c.get("/exceptions?status=open", headers=CLERK).json()["items"]} == \
        {e["id"] for e in queue.values()}
    by_reason = c.get("/exceptions?reason=DUPLICATE_SUSPECTED", headers=AUDITOR).json()["items"]
    assert [e["id"] for e in by_reason] == [queue["dup"]["id"]]
    assert queue["price"]["reasons"] == ["PRICE_VARIANCE"]
    assert queue["over"]["reasons"] == ["QTY_OVER_ORDERED", "QTY_OVER_RECEIVED"]
    sup7 = c.get("/exceptions?supplier_id=SUP-7", headers=CLERK).json()["items"]
    assert [e["id"] for e in sup7] == [queue["no_po"]["id"]]
    assert c.get("/exceptions?older_than=P1D", headers=CLERK).json()["items"] == []
    assert len(c.get("/exceptions?older_than=PT0S", headers=CLERK).json()["items"]) == 4
    seen, cursor = [], None
    while True:
        page = c.get("/exceptions", params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                     headers=CLERK).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and set(seen) == {e["id"] for e in queue.values()}
    for query, path in (("status=closed", "status"), ("reason=NOPE", "reason"),
                        ("older_than=yesterday", "older_than"), ("limit=0", "limit"),
                        ("limit=501", "limit"), ("cursor=garbage", "cursor")):
        r = c.get(f"/exceptions?{query}", headers=CLERK)
        assert r.status_code == 422, query
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["path"] == path
    assert c.get("/exceptions", headers=bearer("rita", "requester")).status_code == 403
    assert c.get("/exceptions").status_code == 401


def test_assignment_and_audit_trail(matching, queue):
    c = matching.client
    exc_id = queue["price"]["id"]
    r = c.post(f"/exceptions/{exc_id}/assign", json={"assignee": "clara"}, headers=CLERK)
    assert r.status_code == 200 and r.json()["assignee"] == "clara"
    assert [e["id"] for e in c.get("/exceptions?assignee=clara", headers=CLERK).json()["items"]] == [exc_id]
    assert c.post(f"/exceptions/{exc_id}/assign", json={"assignee": "x"}, headers=AUDITOR).status_code == 403
    assert c.post(f"/exceptions/{exc_id}/assign", json={}, headers=CLERK).status_code == 422
    assert c.post("/exceptions/nope/assign", json={"assignee": "x"}, headers=CLERK).status_code == 404
    detail = c.get(f"/exceptions/{exc_id}", headers=AUDITOR).json()
    assert [h["action"] for h in detail["history"]] == ["raised", "assigned"]
    assert detail["history"][1]["by"] == "clara" and detail["history"][1]["detail"]["assignee"] == "clara"
    assert {ch["rule"] for ch in detail["checks"]} >= {"PRICE_VARIANCE"}
    assert all(not ch["passed"] for ch in detail["checks"])


def test_accept_clears_with_the_accepted_variance_and_a_second_resolution_is_409(matching, matching_settings, queue):
    c = matching.client
    exc = queue["price"]
    body = {"action": "accept", "reason_code": "price_agreed", "comment": "new list price"}
    assert c.post(f"/exceptions/{exc['id']}/resolve", json=body, headers=ALICE_CLERK).status_code == 403
    r = c.post(f"/exceptions/{exc['id']}/resolve", json=body, headers=CLERK)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "resolved" and out["resolution"]["by"] == "clara"
    assert out["resolution"]["accepted_variance"] == "40.00"  # 2 × (120 − 100)
    again = c.post(f"/exceptions/{exc['id']}/resolve", json=body, headers=CLERK)
    assert again.status_code == 409
    assert wait_status(matching, exc["invoice_id"], "cleared")["outcome"] == "exception"
    cleared = wait_until(lambda: _data(matching_settings, InvoiceClearedForPayment.ce_type,
                                       exc["invoice_id"]), 20, message="cleared event")
    assert cleared[0]["touchless"] is False and cleared[0]["cleared_by"] == "clara"
    assert cleared[0]["accepted_variance"] == "40.00"
    resolved = _data(matching_settings, InvoiceExceptionResolved.ce_type, exc["invoice_id"])
    assert [(e["action"], e["reason_code"], e["resolved_by"]) for e in resolved] == [
        ("accept", "price_agreed", "clara")]
    history = c.get(f"/exceptions/{exc['id']}", headers=CLERK).json()["history"]
    assert history[-1]["action"] == "resolved:accept" and history[-1]["by"] == "clara"
    assert c.get("/exceptions?status=resolved", headers=CLERK).json()["items"][0]["id"] == exc["id"]
    ages = [ln for ln in c.get("/metrics").text.splitlines()
            if ln.startswith("p2p_exception_age_seconds_count")]
    assert ages and float(ages[0].split()[-1]) >= 1


def test_reject_emits_invoice_rejected(matching, matching_settings, queue):
    exc = queue["dup"]
    r = matching.client.post(f"/exceptions/{exc['id']}/resolve",
                             json={"action": "reject", "reason_code": "duplicate"}, headers=CLERK)
    assert r.status_code == 200 and r.json()["resolution"]["action"] == "reject"
    assert wait_status(matching, exc["invoice_id"], "rejected")
    rejected = wait_until(lambda: _data(matching_settings, InvoiceRejected.ce_type, exc["invoice_id"]),
                          20, message="rejected event")
    assert rejected[0]["reason_code"] == "duplicate" and rejected[0]["rejected_by"] == "clara"


def test_request_credit_note_waits_for_the_supplier_whose_credit_note_rematches(matching, matching_settings, queue):
    c = matching.client
    exc = queue["over"]  # 11 invoiced after the 2 of the price exception, on an order of 10
    r = c.post(f"/exceptions/{exc['id']}/resolve",
               json={"action": "request_credit_note", "reason_code": "over_billed"}, headers=CLERK)
    assert r.status_code == 200 and r.json()["status"] == "waiting_supplier"
    assert c.post(f"/exceptions/{exc['id']}/resolve",
                  json={"action": "request_credit_note", "reason_code": "again"},
                  headers=CLERK).status_code == 409
    waiting = c.get("/exceptions?status=waiting_supplier", headers=CLERK).json()["items"]
    assert [e["id"] for e in waiting] == [exc["id"]]
    credit = invoice("PO-800001", [("1", "3", "100.00")], type_="credit_note",
                     preceding=exc["invoice_id"])
    produce(matching_settings, credit)
    wait_status(matching, credit.invoice_id, "cleared")
    assert wait_status(matching, exc["invoice_id"], "cleared")["trigger"] == "credit_note_received"
    done = c.get(f"/exceptions/{exc['id']}", headers=CLERK).json()
    assert done["status"] == "resolved" and done["resolution"]["action"] == "rematch"
    assert "credit_note_received" in [h["action"] for h in done["history"]]


def test_rematch_after_a_tolerance_change(matching, queue):
    c = matching.client
    exc = queue["price"]
    asked = c.post(f"/exceptions/{exc['id']}/resolve",
                   json={"action": "request_credit_note", "reason_code": "price"}, headers=CLERK)
    assert asked.json()["status"] == "waiting_supplier"
    r = c.post(f"/exceptions/{exc['id']}/resolve", json={"action": "rematch", "reason_code": "retry"},
               headers=CLERK)
    assert r.status_code == 200 and r.json()["match_outcome"] == "exception"
    assert r.json()["status"] == "open"  # still failing: back in the open queue
    doc = {"default": {"price_pct": "25", "price_abs": "0", "price_rule": "either",
                       "qty_over_ordered_pct": "0", "qty_over_received_pct": "0", "total_abs": "50"}}
    assert c.put("/tolerances", json=doc, headers=ADMIN).status_code == 200
    r = c.post(f"/exceptions/{exc['id']}/resolve",
               json={"action": "rematch", "reason_code": "tolerance_changed"}, headers=CLERK)
    assert r.status_code == 200, r.text
    assert r.json()["match_outcome"] == "matched" and r.json()["status"] == "resolved"
    m = wait_status(matching, exc["invoice_id"], "cleared")
    assert m["policy_version"] == 2 and m["trigger"] == "rematch"
    bad = c.post(f"/exceptions/{exc['id']}/resolve", json={"action": "pay", "reason_code": "x"},
                 headers=CLERK)
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "action"


def test_a_rematch_that_now_only_lacks_receipts_waits_for_them(matching, matching_settings):
    s, c = matching_settings, matching.client
    produce(s, po_issued("PO-810001"))
    produce(s, receipt("PO-810001", {1: "1"}))
    inv = invoice("PO-810001", [("1", "4", "110.00")])  # +10.00/unit and only 1 of 4 received
    produce(s, inv)
    wait_status(matching, inv.invoice_id, "exception")
    exc = open_exception(matching, inv.invoice_id)
    assert exc["reasons"] == ["PRICE_VARIANCE", "QTY_OVER_RECEIVED"]
    doc = {"default": {"price_pct": "10", "price_abs": "0", "price_rule": "either",
                       "qty_over_ordered_pct": "0", "qty_over_received_pct": "0", "total_abs": "1"},
           "receipt_wait": "PT60S"}
    assert c.put("/tolerances", json=doc, headers=ADMIN).status_code == 200
    r = c.post(f"/exceptions/{exc['id']}/resolve", json={"action": "rematch", "reason_code": "price_ok"},
               headers=CLERK)
    assert r.json()["match_outcome"] == "awaiting_receipt" and r.json()["status"] == "resolved"
    assert wait_status(matching, inv.invoice_id, "awaiting_receipt")["trigger"] == "rematch"
    produce(s, receipt("PO-810001", {1: "3"}))
    assert wait_status(matching, inv.invoice_id, "cleared")["outcome"] == "matched"
    reader = TopicReader(s, s.topic("p2p.matching"))
    try:
        types = wait_until(lambda: (t := [e.type.split(".")[2] for e in reader.envelopes()
                                          if e.subject == inv.invoice_id]) and len(t) >= 5 and t,
                           20, message="five events")
    finally:
        reader.close()
    assert types == ["exception_raised", "exception_resolved", "awaiting_receipt", "matched",
                     "cleared_for_payment"]
