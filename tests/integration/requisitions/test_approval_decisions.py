"""`approval.decided` produced onto the topic → POs, `purchase_order.issued` events, statuses."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.integration.requisitions.conftest import ALICE, RECEIVER, requisition_body
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration


def _pos(ctx, req_id: str) -> list[tuple[str, str]]:
    return ctx.rows("SELECT supplier_id, number FROM purchase_orders WHERE requisition_id = :i "
                    "ORDER BY seq", i=req_id)


def test_approved_issues_one_po_per_supplier_with_events(ctx) -> None:
    req = ctx.create()
    ctx.submit(req["id"])
    reader = ctx.reader("p2p.purchase-orders")
    try:
        ctx.decide(req["id"], comment="fine")
        got = wait_until(lambda: (r := ctx.get(req["id"]))["status"] == "ordered" and r,
                         message="ordered")
        wait_until(lambda: len([e for e in reader.envelopes()
                                if e.data.get("requisition_id") == req["id"]]) >= 2,
                   message="two purchase_order.issued events")
        events = [e for e in reader.envelopes() if e.data.get("requisition_id") == req["id"]]
    finally:
        reader.close()
    assert got["approval"]["outcome"] == "approved" and got["approval"]["comment"] == "fine"
    assert got["approval"]["decided_by"] == ["bob"]
    assert [h["action"] for h in got["history"]] == ["created", "submitted", "approved", "ordered"]
    numbers = got["purchase_orders"]
    assert len(numbers) == 2 and all(re.fullmatch(r"PO-\d{6}", n) for n in numbers)
    assert len(events) == 2 and {e.type for e in events} == {"p2p.purchase_order.issued.v1"}
    by_supplier = {e.data["supplier_id"]: e for e in events}
    acme = by_supplier["SUP-ACME"]
    assert acme.subject == acme.data["po_id"]  # keyed by PO id
    assert acme.correlation_id == req["id"] and acme.causation_id  # caused by the decision
    d = acme.data
    assert d["po_number"] in numbers and d["requester"] == "alice" and d["cost_center"] == "CC-100"
    assert d["currency"] == "EUR" and d["total"] == "2800.98"
    assert d["supplier_identifiers"] == {
        "id": "SUP-ACME", "name": "Acme GmbH", "vat_id": "DE123456789",
        "peppol_id": "0088:9482348239847239874", "identifiers": ["0192:987654321"]}
    assert [(ln["line_no"], ln["description"], ln["quantity"], ln["unit_price"],
             ln["receipt_required"]) for ln in d["lines"]] == [
        (1, "Laptop", "2", "1200.50", True), (2, "Docking station", "2", "199.99", True)]
    globex = by_supplier["SUP-GLOBEX"].data
    assert [(ln["line_no"], ln["uom"], ln["receipt_required"]) for ln in globex["lines"]] == [
        (1, "HUR", False)]  # renumbered per PO
    po = ctx.po(d["po_number"])
    assert po["status"] == "issued" and po["id"] == d["po_id"]
    assert [(ln["ordered_quantity"], ln["received_quantity"]) for ln in po["lines"]] == [
        ("2", "0"), ("2", "0")]
    assert ctx.po(d["po_id"])["number"] == d["po_number"]  # by id or by number


def test_a_redelivered_decision_creates_nothing_twice(ctx) -> None:
    req = ctx.create()
    ctx.submit(req["id"])
    first = str(uuid.uuid4())
    ctx.decide(req["id"], event_id=first)
    wait_until(lambda: ctx.get(req["id"])["status"] == "ordered")
    before_outbox = ctx.outbox_count("p2p.purchase_order.issued.v1")
    again = str(uuid.uuid4())
    ctx.decide(req["id"], event_id=first)  # same ce_id: the inbox skips it
    ctx.decide(req["id"], event_id=again)  # new ce_id: the requisition is no longer pending
    wait_until(lambda: ctx.consumed(again), message="the second decision to be consumed")
    assert len(_pos(ctx, req["id"])) == 2
    assert {s for s, _ in _pos(ctx, req["id"])} == {"SUP-ACME", "SUP-GLOBEX"}
    assert ctx.outbox_count("p2p.purchase_order.issued.v1") == before_outbox
    got = ctx.get(req["id"])
    assert got["status"] == "ordered" and len(got["purchase_orders"]) == 2
    assert [h["action"] for h in got["history"]].count("approved") == 1


def test_rejected_is_final(ctx) -> None:
    req = ctx.create()
    ctx.submit(req["id"])
    ctx.decide(req["id"], "rejected", comment="no budget")
    got = wait_until(lambda: (r := ctx.get(req["id"]))["status"] == "rejected" and r)
    assert got["approval"]["outcome"] == "rejected" and got["purchase_orders"] == []
    assert _pos(ctx, req["id"]) == []
    r = ctx.client.post(f"/requisitions/{req['id']}/submit", headers=ALICE)
    assert r.status_code == 409 and "rejected" in r.json()["detail"]


def test_changes_requested_then_resubmitted_and_stale_decisions_ignored(ctx) -> None:
    req = ctx.create()
    ctx.submit(req["id"])
    ctx.decide(req["id"], "changes_requested", comment="split the services")
    wait_until(lambda: ctx.get(req["id"])["status"] == "changes_requested")
    r = ctx.client.patch(f"/requisitions/{req['id']}", json={"lines": requisition_body()["lines"][:2]},
                         headers=ALICE)
    assert r.status_code == 200, r.text
    resubmitted = ctx.submit(req["id"])
    assert resubmitted["submission"] == 2
    # A late decision about submission 1 must not approve submission 2.
    stale = str(uuid.uuid4())
    ctx.decide(req["id"], "approved", submission=1, event_id=stale)
    wait_until(lambda: ctx.consumed(stale), message="the stale decision to be consumed")
    assert ctx.get(req["id"])["status"] == "pending_approval" and _pos(ctx, req["id"]) == []
    ctx.decide(req["id"], "approved", submission=2)
    got = wait_until(lambda: (r := ctx.get(req["id"]))["status"] == "ordered" and r)
    assert [s for s, _ in _pos(ctx, req["id"])] == ["SUP-ACME"]  # the edited content was ordered
    assert got["approval"]["submission"] == 2
    assert [h["action"] for h in got["history"]] == [
        "created", "submitted", "changes_requested", "updated", "submitted", "approved", "ordered"]


def test_decisions_for_cancelled_or_unknown_requisitions_are_ignored(ctx) -> None:
    req = ctx.create()
    ctx.submit(req["id"])
    assert ctx.client.post(f"/requisitions/{req['id']}/cancel", headers=ALICE).status_code == 200
    late, ghost = str(uuid.uuid4()), str(uuid.uuid4())
    before = ctx.snapshot()
    ctx.decide(req["id"], event_id=late)
    ctx.decide("no-such-requisition", event_id=ghost)
    wait_until(lambda: ctx.consumed(late) and ctx.consumed(ghost), message="both consumed")
    assert ctx.get(req["id"])["status"] == "cancelled"
    after = ctx.snapshot()
    assert after == before  # no PO, no event, no history


def test_po_numbers_never_repeat(ctx) -> None:
    numbers = []
    for _ in range(3):
        numbers += ctx.ordered()["purchase_orders"]
    everything = [n for (n,) in ctx.rows("SELECT number FROM purchase_orders")]
    assert len(everything) == len(set(everything))
    assert len(numbers) == 6 and len(set(numbers)) == 6
    ints = [int(n[3:]) for n in numbers]
    assert ints == sorted(ints)
    # Receivers can list them; filters narrow the list.
    listed = ctx.client.get("/purchase-orders", params={"limit": 500}, headers=RECEIVER).json()
    assert set(numbers) <= {p["number"] for p in listed["items"]}
    globex = ctx.client.get("/purchase-orders", params={"supplier_id": "SUP-GLOBEX", "limit": 500},
                            headers=RECEIVER).json()["items"]
    assert globex and {p["supplier_id"] for p in globex} == {"SUP-GLOBEX"}


def test_po_creation_is_idempotent_even_if_the_status_check_is_bypassed(ctx) -> None:
    """Belt and braces: with the requisition forced back to pending_approval (as if its state
    and the inbox had been lost), a new decision still finds the (requisition, supplier) POs."""
    req = ctx.ordered()
    issued = ctx.outbox_count("p2p.purchase_order.issued.v1")
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE requisitions SET status = 'pending_approval' WHERE id = %s",
                             (req["id"],))
    again = str(uuid.uuid4())
    ctx.decide(req["id"], event_id=again)
    wait_until(lambda: ctx.consumed(again), message="the decision to be consumed")
    assert sorted(_pos(ctx, req["id"])) == sorted(
        zip(["SUP-ACME", "SUP-GLOBEX"], req["purchase_orders"], strict=True))
    assert ctx.outbox_count("p2p.purchase_order.issued.v1") == issued
    assert ctx.get(req["id"])["status"] == "ordered"
