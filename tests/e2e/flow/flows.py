"""Steps of the document flow as HTTP calls, shared by the flow tests."""

from __future__ import annotations

import itertools
import os
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from shared.cli.demo import documents as docs
from shared.cli.demo.client import Api
from shared.cli.demo.world import DEMO_SUPPLIERS, SupplierProfile
from tests.support.poll import wait_until

ADMIN = ("flow-admin", ("admin",))
RECEIVER = ("flow-dock", ("receiver",))
INTAKE = ("flow-access-point", ("integration",))
CLERK = ("flow-clerk", ("ap_clerk",))
SUPPLIERS = {s.id: s for s in DEMO_SUPPLIERS}
_numbers = itertools.count(1)
RUN = os.urandom(3).hex().upper()


def next_seq() -> int:
    return next(_numbers)


def invoice_number(prefix: str = "INV") -> str:
    return f"{prefix}-{RUN}-{next(_numbers):04d}"


def requisition(api: Api, requester: str, lines: list[dict[str, Any]], *,
                cost_center: str = "CC-100", currency: str = "EUR", title: str = "flow test",
                submit: bool = True) -> dict[str, Any]:
    body = {"title": title, "cost_center": cost_center, "currency": currency,
            "justification": "end-to-end flow test", "lines": lines}
    req = api.post("requisitions", "/requisitions", user=requester, roles=("requester",),
                   json=body)
    assert req["status"] == "draft"
    if submit:
        req = api.post("requisitions", f"/requisitions/{req['id']}/submit", user=requester,
                       roles=("requester",))
        assert req["status"] == "pending_approval"
    return req


def get_requisition(api: Api, req_id: str, requester: str) -> dict[str, Any]:
    return api.get("requisitions", f"/requisitions/{req_id}", user=requester,
                   roles=("requester",))


def wait_requisition(api: Api, req_id: str, requester: str, statuses: set[str],
                     timeout: float = 60) -> dict[str, Any]:
    return wait_until(lambda: (r := get_requisition(api, req_id, requester))["status"]
                      in statuses and r, timeout, interval=0.2,
                      message=f"requisition {req_id} to reach {statuses}")


def line(description: str, quantity: str, unit_price: str, supplier_id: str, *,
         category: str = "OFFICE", uom: str = "EA", receipt_required: bool = True) -> dict:
    return {"description": description, "category": category, "quantity": quantity,
            "uom": uom, "unit_price": unit_price, "supplier_id": supplier_id,
            "receipt_required": receipt_required}


def task_for(api: Api, approver: str, req_id: str) -> dict[str, Any] | None:
    items = api.pages("approvals", "/inbox", user=approver, roles=("approver",))
    return next((t for t in items if t["requisition_id"] == req_id), None)


def wait_task(api: Api, approver: str, req_id: str, timeout: float = 60) -> dict[str, Any]:
    return wait_until(lambda: task_for(api, approver, req_id), timeout, interval=0.2,
                      message=f"a task for {approver} on {req_id}")


def decide(api: Api, approver: str, task_id: str, decision: str,
           comment: str | None = None, ok: tuple[int, ...] = (200,)) -> Any:
    body = {"decision": decision, **({"comment": comment} if comment else {})}
    return api.request("approvals", "POST", f"/tasks/{task_id}/decision", user=approver,
                       roles=("approver",), json=body, ok=ok)


def auto_approved_po(api: Api, supplier_id: str, lines: list[dict[str, Any]],
                     requester: str = "alice", currency: str = "EUR") -> dict[str, Any]:
    """A PO from a requisition below the auto-approval threshold (no approver involved)."""
    req = requisition(api, requester, lines, currency=currency)
    req = wait_requisition(api, req["id"], requester, {"ordered"})
    (number,) = req["purchase_orders"]
    return purchase_order(api, number)


def purchase_order(api: Api, ref: str) -> dict[str, Any]:
    return api.get("requisitions", f"/purchase-orders/{ref}", user=RECEIVER[0],
                   roles=RECEIVER[1])


def receive(api: Api, po: dict[str, Any], quantities: dict[int, str] | None = None
            ) -> dict[str, Any]:
    """Receive `quantities` per PO line (default: everything still open)."""
    lines = [{"line_no": ln["line_no"],
              "quantity": (quantities or {}).get(ln["line_no"], ln["open_quantity"])}
             for ln in po["lines"] if ln["receipt_required"]]
    lines = [ln for ln in lines if Decimal(ln["quantity"]) != 0]
    out = api.post("requisitions", f"/purchase-orders/{po['number']}/receipts",
                   user=RECEIVER[0], roles=RECEIVER[1], json={"lines": lines})
    return out["purchase_order"]


def invoice_doc(po: dict[str, Any], supplier: SupplierProfile | None = None, *,
                number: str | None = None, issue_date: date | None = None,
                price_factor: Decimal = Decimal(1), extra_qty: Decimal = Decimal(0),
                order_reference: str | None = "", currency: str | None = None,
                extra_lines: tuple[docs.DocLine, ...] = ()) -> docs.InvoiceDoc:
    """An invoice that bills `po` exactly, unless told otherwise."""
    supplier = supplier or SUPPLIERS[po["supplier_id"]]
    lines = []
    for i, ln in enumerate(po["lines"], start=1):
        price = Decimal(ln["unit_price"])
        qty = Decimal(ln["ordered_quantity"])
        if i == 1:
            price = (price * price_factor).quantize(Decimal("0.01"))
            qty += extra_qty
        lines.append(docs.DocLine(str(i), ln["description"], qty, price, ln["uom"],
                                  str(ln["line_no"])))
    issue = issue_date or date.today() - timedelta(days=1)
    return docs.InvoiceDoc(
        number=number or invoice_number(), issue_date=issue,
        currency=currency or po["currency"], supplier=supplier,
        lines=tuple(lines) + extra_lines,
        order_reference=po["number"] if order_reference == "" else order_reference,
        due_date=issue + timedelta(days=30), tax_rate=docs.tax_rate_for(supplier))


def send(api: Api, body: bytes, content_type: str, ok: tuple[int, ...] = (201,)) -> Any:
    response = api.request("invoices", "POST", "/invoices", user=INTAKE[0], roles=INTAKE[1],
                           content=body, content_type=content_type, ok=ok)
    return response.json()


def send_doc(api: Api, doc: docs.InvoiceDoc, fmt: str = "json") -> dict[str, Any]:
    return send(api, *docs.encode(doc, fmt))


def get_invoice(api: Api, invoice_id: str) -> dict[str, Any]:
    return api.get("invoices", f"/invoices/{invoice_id}", user=CLERK[0], roles=CLERK[1])


def wait_invoice(api: Api, invoice_id: str, statuses: set[str], timeout: float = 60
                 ) -> dict[str, Any]:
    return wait_until(lambda: (i := get_invoice(api, invoice_id))["status"] in statuses and i,
                      timeout, interval=0.2,
                      message=f"invoice {invoice_id} to reach {statuses}")


def match_of(api: Api, invoice_id: str) -> dict[str, Any]:
    return api.get("matching", f"/matches/{invoice_id}", user=CLERK[0], roles=CLERK[1])


def exceptions_of(api: Api, invoice_id: str, status: str | None = None) -> list[dict[str, Any]]:
    params = {"status": status} if status else {}
    return [e for e in api.pages("matching", "/exceptions", params=params, user=CLERK[0],
                                 roles=CLERK[1]) if e["invoice_id"] == invoice_id]


def wait_exception(api: Api, invoice_id: str, timeout: float = 60) -> dict[str, Any]:
    found = wait_until(lambda: exceptions_of(api, invoice_id, "open"), timeout, interval=0.3,
                       message=f"an open exception for invoice {invoice_id}")
    assert len(found) == 1, found  # one open exception per invoice
    return found[0]


def resolve(api: Api, exception_id: str, action: str, reason_code: str,
            comment: str = "flow test", ok: tuple[int, ...] = (200,)) -> Any:
    return api.request("matching", "POST", f"/exceptions/{exception_id}/resolve",
                       user=CLERK[0], roles=CLERK[1], ok=ok,
                       json={"action": action, "reason_code": reason_code,
                             "comment": comment}).json()
