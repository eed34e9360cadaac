"""The whole flow over HTTP: requisition → multi-level approval through the inbox → PO →
goods receipt → a real PEPPOL BIS 3.0 invoice (UBL) → touchless clearance."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.cli.demo import documents as docs
from shared.cli.demo.world import PEPPOL_EXAMPLE_SUPPLIER
from tests.e2e.flow import flows

pytestmark = pytest.mark.e2e


def test_requisition_to_touchless_payment_with_a_real_peppol_invoice(api, base_example):
    requester = "alice"
    lines = [
        flows.line("Senior consultant day", "10", "400.00", "SUP-PEPPOL", category="IT",
                   uom="DAY"),
        flows.line("Junior consultant day", "5", "500.00", "SUP-PEPPOL", category="IT",
                   uom="DAY"),
    ]
    body = {"title": "Integration consulting", "cost_center": "CC-100", "currency": "EUR",
            "lines": lines}
    preview = api.post("approvals", "/approvals/preview", user=requester, roles=("requester",),
                       json=body)
    steps = preview["steps"]
    assert not preview["auto_approved"]
    assert len(steps) >= 2, steps  # 6 500 EUR is above the cost center owner's limit
    assert requester not in {a for s in steps for a in s["approvers"]}  # segregation of duties

    req = flows.requisition(api, requester, lines, title=body["title"])
    assert req["total"] in ("6500.00", "6500", "6500.000000")
    for n, step in enumerate(steps):
        approvers = step["approvers"] if step["mode"] == "all" else step["approvers"][:1]
        for approver in approvers:
            task = flows.wait_task(api, approver, req["id"])
            assert task["level"] == step["level"]
            assert task["amount"] in ("6500.00", "6500") and task["currency"] == "EUR"
            # Levels are sequential: the next level has nothing to decide yet.
            for later in steps[n + 1:]:
                for other in later["approvers"]:
                    if other not in step["approvers"]:
                        assert flows.task_for(api, other, req["id"]) is None
            flows.decide(api, approver, task["task_id"], "approve", "fine")
            # A decided task is closed: deciding it again is a conflict, not a second vote.
            flows.decide(api, approver, task["task_id"], "approve", ok=(409,))

    req = flows.wait_requisition(api, req["id"], requester, {"ordered"})
    approval = api.get("approvals", f"/approvals/{req['id']}", user=requester,
                       roles=("requester",))
    assert approval["status"] == "approved"
    assert [s["status"] for s in approval["steps"]] == ["approved"] * len(steps)
    assert all(d["decision"] == "approve" for s in approval["steps"] for d in s["decisions"])
    (po_number,) = req["purchase_orders"]  # one supplier → one PO
    assert po_number.startswith("PO-") and len(po_number) == 9
    po = flows.purchase_order(api, po_number)
    assert po["status"] == "issued" and po["supplier_id"] == "SUP-PEPPOL"

    po = flows.receive(api, po)
    assert po["status"] == "received"

    number = flows.invoice_number("PEPPOL")
    xml = docs.ubl_from_example(
        base_example, number=number, issue_date=date.today(), po_number=po_number,
        supplier=PEPPOL_EXAMPLE_SUPPLIER,
        lines=[docs.DocLine(str(ln["line_no"]), ln["description"],
                            Decimal(ln["ordered_quantity"]),
                            Decimal(ln["unit_price"]), ln["uom"],
                            str(ln["line_no"])) for ln in po["lines"]])
    created = flows.send(api, xml, "application/xml")
    assert created["source_format"] == "ubl"
    assert created["order_reference"] == po_number
    assert created["supplier_id"] == "SUP-PEPPOL"

    invoice = flows.wait_invoice(api, created["id"], {"cleared_for_payment", "exception",
                                                      "rejected"})
    assert invoice["status"] == "cleared_for_payment", invoice
    assert [h["status"] for h in invoice["history"]][-1] == "cleared_for_payment"
    assert "exception" not in [h["status"] for h in invoice["history"]]
    assert flows.exceptions_of(api, created["id"]) == []
    match = flows.match_of(api, created["id"])
    assert match["po_number"] == po_number
    assert match["checks"] and all(c["passed"] for c in match["checks"]), match["checks"]
    rules = {c["rule"] for c in match["checks"]}
    assert {"PRICE_VARIANCE", "QTY_OVER_ORDERED", "QTY_OVER_RECEIVED"} <= rules
    original = api.request("invoices", "GET", f"/invoices/{created['id']}/original",
                           user=flows.CLERK[0], roles=flows.CLERK[1])
    assert original.content == xml  # kept exactly as received
    final = flows.get_requisition(api, req["id"], requester)
    assert final["status"] == "received"
    statuses = [h["to_status"] for h in final["history"]]
    assert statuses.index("pending_approval") < statuses.index("approved") < \
        statuses.index("ordered") < statuses.index("received")
