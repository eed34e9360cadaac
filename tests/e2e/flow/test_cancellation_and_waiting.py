"""A requisition cancelled mid-approval, and an invoice that arrives before the goods."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.e2e.flow import flows
from tests.support.poll import wait_until

pytestmark = pytest.mark.e2e


def _approval(api, req_id: str, requester: str) -> dict | None:
    response = api.request("approvals", "GET", f"/approvals/{req_id}", user=requester,
                           roles=("requester",), ok=(200, 404))  # 404 until it has started
    return response.json() if response.status_code == 200 else None


def test_cancellation_mid_approval_closes_the_open_task_and_orders_nothing(api):
    requester = "liam"
    lines = [flows.line("Standing desk frame", "12", "560.00", "SUP-ACME")]  # 6 720 EUR
    req = flows.requisition(api, requester, lines, title="Desks for the new floor")
    approval = wait_until(lambda: _approval(api, req["id"], requester), 60,
                          message="the approval workflow to start")
    assert len(approval["steps"]) >= 2, approval  # 6 720 EUR: two levels at least
    first, second = approval["steps"][0]["approvers"][0], approval["steps"][1]["approvers"][0]
    task = flows.wait_task(api, first, req["id"])
    flows.decide(api, first, task["task_id"], "approve")
    pending = flows.wait_task(api, second, req["id"])  # mid-approval: level 2 is open

    cancelled = api.post("requisitions", f"/requisitions/{req['id']}/cancel", user=requester,
                         roles=("requester",), json={"reason": "project postponed"})
    assert cancelled["status"] == "cancelled"
    wait_until(lambda: flows.task_for(api, second, req["id"]) is None, 60,
               message="the open task to leave the inbox")
    flows.decide(api, second, pending["task_id"], "approve", ok=(409,))
    wait_until(lambda: _approval(api, req["id"], requester)["status"] == "cancelled", 60,
               message="the approval to end as cancelled")
    final = flows.get_requisition(api, req["id"], requester)
    assert final["status"] == "cancelled" and final["purchase_orders"] == []
    # Cancelling again, or editing, is a state conflict.
    api.request("requisitions", "POST", f"/requisitions/{req['id']}/cancel", user=requester,
                roles=("requester",), ok=(409,))


def test_an_invoice_before_the_receipt_waits_then_clears_when_the_goods_arrive(api):
    po = flows.auto_approved_po(api, "SUP-ACME", [
        flows.line("HVAC filter set", "4", "65.00", "SUP-ACME", category="FACILITIES",
                   uom="SET"),
        flows.line("Deep cleaning, open-plan floor", "2", "38.00", "SUP-ACME",
                   category="FACILITIES", uom="HUR", receipt_required=False),
    ])
    created = flows.send_doc(api, flows.invoice_doc(po), "ubl")
    invoice = flows.wait_invoice(api, created["id"], {"awaiting_receipt", "exception",
                                                      "cleared_for_payment"})
    assert invoice["status"] == "awaiting_receipt"  # not an exception: only receipts lack
    match = flows.match_of(api, created["id"])
    assert match["outcome"] == "awaiting_receipt"
    failed = [c for c in match["checks"] if not c["passed"]]
    assert {c["rule"] for c in failed} == {"QTY_OVER_RECEIVED"}
    assert flows.exceptions_of(api, created["id"]) == []

    po = flows.receive(api, po, {1: "2"})  # half of the goods
    assert po["status"] == "partially_received"
    wait_until(lambda: flows.match_of(api, created["id"])["trigger"] != match["trigger"] or
               flows.match_of(api, created["id"])["decided_at"] != match["decided_at"], 30,
               message="a re-match on the partial receipt")
    assert flows.get_invoice(api, created["id"])["status"] == "awaiting_receipt"

    po = flows.receive(api, po)  # the rest of the goods (the service line needs no receipt)
    assert po["lines"][0]["open_quantity"] in ("0", "0.000000")
    invoice = flows.wait_invoice(api, created["id"], {"cleared_for_payment"})
    statuses = [h["status"] for h in invoice["history"]]
    assert statuses.index("awaiting_receipt") < statuses.index("cleared_for_payment")
    assert "exception" not in statuses
    assert Decimal(flows.purchase_order(api, po["number"])["lines"][0]["received_quantity"]) \
        == Decimal("4")
    assert flows.match_of(api, created["id"])["trigger"] == "goods_receipt_recorded"
