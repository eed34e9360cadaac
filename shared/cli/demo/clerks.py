"""AP clerks working the exception queue: assign, decide by the reasons, resolve; suppliers
answering credit-note requests; a second look at what a rematch left open."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from shared.cli.demo import documents as docs
from shared.cli.demo.client import ApiError
from shared.cli.demo.state import CLERKS, InvoiceRun


class ApClerks:
    """Mixed into `DemoRun` (which provides the api, invoices, progress and problems)."""

    # -- AP clerks ------------------------------------------------------------------------------
    @staticmethod
    def clerk_action(reasons: list[str], first_look: bool = True) -> tuple[str, str, str]:
        """What an AP clerk does with an exception, by its reasons: (action, reason code,
        comment). On the first look a quantity short of receipts is matched again (the goods
        may have arrived since); what is still wrong afterwards is settled for good."""
        r = set(reasons)
        if "DUPLICATE_SUSPECTED" in r:
            return "reject", "DUPLICATE", "Same amount and a near-identical number: a duplicate."
        if r & {"PO_NOT_FOUND", "SUPPLIER_MISMATCH", "CURRENCY_MISMATCH", "LINE_NOT_ON_PO",
                "PO_CLOSED"}:
            return "reject", "WRONG_PO", "Not our order: returned to the supplier."
        if "QTY_OVER_ORDERED" in r:
            return "request_credit_note", "OVERBILLED", "Billed more than ordered."
        if r & {"QTY_OVER_RECEIVED", "MISSING_RECEIPT"}:
            if first_look:
                return "rematch", "RECEIPT_POSTED", "Goods received since; matching again."
            return "request_credit_note", "NOT_DELIVERED", "Billed more than was delivered."
        return "accept", "PRICE_AGREED", "Price increase confirmed by the buyer."

    def _clerk_decision(self, exc: dict[str, Any], inv: InvoiceRun,
                        first_look: bool) -> tuple[str, str, str]:
        action, code, comment = self.clerk_action(exc.get("reasons") or [], first_look)
        if action == "request_credit_note" and not self._bills_beyond_po(inv):
            # This invoice alone fits the PO: the excess is another invoice's, which the clerk
            # rejects in the same pass; matching this one again then clears it.
            return "rematch", "OTHER_INVOICE", "The excess was on another invoice; rematching."
        return action, code, comment

    @staticmethod
    def _bills_beyond_po(inv: InvoiceRun) -> bool:
        if inv.po is None:
            return True
        ordered = {str(ln["line_no"]): Decimal(ln["ordered_quantity"]) for ln in inv.po.lines}
        return any(line.quantity > ordered.get(line.po_line_no or "", line.quantity - 1)
                   for line in inv.doc.lines)

    def _our_exceptions(self, status: str) -> list[dict[str, Any]]:
        ours = {i.id: i for i in self.invoices if i.id}
        items = self.api.pages("matching", "/exceptions", params={"status": status},
                               user=CLERKS[0], roles=("ap_clerk",))
        return [e for e in items if e["invoice_id"] in ours]

    def resolve_exceptions(self) -> None:
        if "exceptions" not in self.tasks:
            self._task("exceptions", "exceptions resolved", 0)
            self._exceptions_seen = 0
        total = self._exceptions_seen
        for look in (1, 2, 3):
            # A rematch that still fails keeps its exception open with the remaining reasons
            # (or the same ones, when the receipt it waited for had not reached matching yet):
            # the next look takes every open one again.
            open_ = self._our_exceptions("open")
            if not open_:
                break
            total += len(open_)
            self._set("exceptions", total - len(open_), total)
            credit_notes: list[tuple[dict[str, Any], InvoiceRun]] = []
            ours = {i.id: i for i in self.invoices if i.id}
            decided = [(exc, self._clerk_decision(exc, ours[exc["invoice_id"]], look == 1))
                       for exc in open_]
            # Rejections first: a rejected invoice stops counting against its PO, which may be
            # all another invoice on that PO needs.
            decided.sort(key=lambda pair: pair[1][0] != "reject")
            for n, (exc, (action, code, comment)) in enumerate(decided):
                self.exceptions[exc["id"]] = exc
                clerk = CLERKS[n % len(CLERKS)]
                self.api.post("matching", f"/exceptions/{exc['id']}/assign", user=clerk,
                              roles=("ap_clerk",), json={"assignee": clerk})
                try:
                    out = self.api.post("matching", f"/exceptions/{exc['id']}/resolve",
                                        user=clerk, roles=("ap_clerk",),
                                        json={"action": action, "reason_code": code,
                                              "comment": comment})
                    self.exceptions[exc["id"]] = out
                except ApiError as err:
                    self._problem(str(err))
                if action == "request_credit_note":
                    credit_notes.append((exc, ours[exc["invoice_id"]]))
                self._advance("exceptions")
            # Suppliers answer credit-note requests; the invoice is then matched again.
            for exc, inv in credit_notes:
                self._credit_note_for(exc, inv)
            self._exceptions_seen = total
            self.settle("invoices after the AP clerks", [i for i in self.invoices if i.id])

    def _credit_note_for(self, exc: dict[str, Any], inv: InvoiceRun) -> None:
        if inv.po is None:
            return
        ordered = {str(line["line_no"]): Decimal(line["ordered_quantity"])
                   for line in inv.po.lines}
        lines = []
        for line in inv.doc.lines:
            excess = line.quantity - ordered.get(line.po_line_no or "", line.quantity)
            if excess > 0:
                lines.append(docs.DocLine(str(len(lines) + 1), line.description, excess,
                                          line.unit_price, line.uom, line.po_line_no))
        if not lines:
            return
        doc = docs.InvoiceDoc(number=f"CN{inv.doc.number}", issue_date=inv.doc.issue_date
                              + timedelta(days=3), currency=inv.doc.currency,
                              supplier=inv.doc.supplier, lines=tuple(lines),
                              order_reference=inv.doc.order_reference, type="credit_note",
                              preceding_invoice=inv.doc.number, tax_rate=inv.doc.tax_rate)
        cn = InvoiceRun(inv.po, doc, "ubl", "credit_note", inv.fault)
        self.invoices.append(cn)
        if self.progress is not None and "invoices" in self.tasks:
            self.progress.update(self.tasks["invoices"], total=len(self.invoices))
        self._post_one(cn)
        if cn.id:
            self.settle(f"credit note {doc.number[-6:]}", [cn])
        clerk = CLERKS[0]
        current = self.api.get("matching", f"/exceptions/{exc['id']}", user=clerk,
                               roles=("ap_clerk",))
        if current["status"] == "resolved":  # matching re-ran it when the credit note came
            self.exceptions[exc["id"]] = current
            return
        try:
            out = self.api.post("matching", f"/exceptions/{exc['id']}/resolve", user=clerk,
                                roles=("ap_clerk",),
                                json={"action": "rematch", "reason_code": "CREDIT_NOTE_RECEIVED",
                                      "comment": f"credit note {doc.number} received"})
            self.exceptions[exc["id"]] = out
        except ApiError as err:
            self._problem(f"rematch after credit note: {err}")
