"""Suppliers' invoices: built from the POs as planned (faults included), sent in every format
(CSV ones as batch files), and followed until matching has decided."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from shared.cli.demo import documents as docs
from shared.cli.demo import scenario as sc
from shared.cli.demo.client import ApiError
from shared.cli.demo.state import CLERKS, IN_FLIGHT_INVOICE, INTAKE, InvoiceRun, PoRun


class Invoicing:
    """Mixed into `DemoRun` (which provides the api, the plan, progress and problems)."""

    # -- invoices -------------------------------------------------------------------------------
    def _invoice_doc(self, po: PoRun) -> docs.InvoiceDoc:
        p = po.plan.invoice
        supplier = self.suppliers[po.plan.supplier_id]
        lines: list[docs.DocLine] = []
        for line in po.lines:
            qty = Decimal(line["ordered_quantity"])
            if po.plan.receipt == sc.PARTIAL_ONLY and line.get("receipt_required", True):
                qty = Decimal(line.get("received_quantity") or "0")  # bills what was shipped
            if qty <= 0:
                continue
            price = Decimal(line["unit_price"])
            if not lines:  # faults go on the first billed line
                price = (price * p.price_factor).quantize(docs.CENT, ROUND_HALF_UP) \
                    if p.price_factor != 1 else price
                if p.fault == sc.OVER_BILLED:
                    qty = max(qty + 1, (qty * Decimal("1.2")).to_integral_value(ROUND_CEILING))
            lines.append(docs.DocLine(str(len(lines) + 1), line["description"], qty, price,
                                      line.get("uom") or "EA", str(line["line_no"])))
        order_ref: str | None = po.number
        if p.fault == sc.NO_PO:
            order_ref = None
        elif p.fault == sc.WRONG_PO:
            other = self.reqs[p.wrong_po_from].pos if p.wrong_po_from is not None else []
            order_ref = next((o.number for o in other
                              if o.plan.supplier_id != supplier.id), None)
        issue = self.plan.day(p.issue_day)
        return docs.InvoiceDoc(
            number=f"{p.number[:3]}{self.tag}{p.number[3:]}", issue_date=issue,
            currency=po.requisition.plan.currency, supplier=supplier, lines=tuple(lines),
            order_reference=order_ref, due_date=issue + timedelta(days=30),
            tax_rate=docs.tax_rate_for(supplier))

    def prepare_invoices(self) -> None:
        for po in self.all_pos():
            doc = self._invoice_doc(po) if po.lines else None
            if doc is None or not doc.lines:
                continue
            inv = InvoiceRun(po, doc, po.plan.invoice.format, "original", po.plan.invoice.fault)
            self.invoices.append(inv)
            if po.plan.invoice.fault == sc.EXACT_DUP:
                self.invoices.append(InvoiceRun(po, doc, inv.fmt, "exact_duplicate", inv.fault))
            elif po.plan.invoice.fault == sc.SUSPECT_DUP:
                again = doc.renumbered(f"{doc.number}-B", doc.issue_date + timedelta(days=2))
                self.invoices.append(InvoiceRun(po, again, "json", "suspect_duplicate",
                                                inv.fault))
        self._task("invoices", "invoices sent", len(self.invoices))

    def send_invoices(self, misdirected: bool) -> None:
        """Genuine invoices first (CSV ones in one batch file); invoices quoting a wrong or no
        PO and second copies at the end of the month, once the genuine ones are matched and
        received: matching counts their quantities against the PO they quote."""
        def late(inv: InvoiceRun) -> bool:
            return inv.fault in (sc.WRONG_PO, sc.NO_PO) or inv.role == "suspect_duplicate"

        todo = [i for i in self.invoices if late(i) == misdirected and not i.id
                and not i.refused]
        batch = [i for i in todo if i.fmt == "csv" and i.role == "original"]
        self._post_batch(batch)
        in_batch = {id(i) for i in batch}
        for inv in todo:
            if id(inv) in in_batch:
                continue
            if inv.fmt == "csv":  # a CSV file of its own
                self._post_batch([inv])
            else:
                self._post_one(inv)

    def _post_one(self, inv: InvoiceRun) -> None:
        body, content_type = docs.encode(inv.doc, inv.fmt)
        try:
            out = self.api.post("invoices", "/invoices", user=INTAKE[0], roles=INTAKE[1],
                                content=body, content_type=content_type)
        except ApiError as exc:
            if exc.status == 409 and inv.role == "exact_duplicate":
                inv.refused = "duplicate"
            else:
                inv.refused = f"{exc.status}"
                self._problem(f"invoice {inv.doc.number} ({inv.fmt}) refused: {exc}")
            self._advance("invoices")
            return
        inv.id, inv.status, inv.flags = out["id"], out["status"], out.get("flags") or []
        self._advance("invoices")

    def _post_batch(self, batch: list[InvoiceRun]) -> None:
        if not batch:
            return
        out = self.api.post("invoices", "/invoices/batch", user=INTAKE[0], roles=INTAKE[1],
                            content=docs.to_csv([i.doc for i in batch]).encode(),
                            content_type="text/csv")
        by_number = {r.get("invoice_number"): r for r in out.get("results") or []}
        for inv in batch:
            result = by_number.get(inv.doc.number) or {}
            if result.get("outcome") == "created":
                inv.id, inv.flags = result["id"], result.get("flags") or []
            elif result.get("outcome") == "duplicate" and inv.role == "exact_duplicate":
                inv.refused = "duplicate"
            else:
                inv.refused = result.get("outcome") or "missing"
                self._problem(f"CSV invoice {inv.doc.number} not created: {result}")
            self._advance("invoices")

    def _refresh_invoice(self, inv: InvoiceRun) -> str:
        inv.view = self.api.get("invoices", f"/invoices/{inv.id}", user=CLERKS[0],
                                roles=("ap_clerk",))
        inv.status = inv.view["status"]
        return inv.status

    def settle(self, label: str, invoices: list[InvoiceRun],
               until: Callable[[str], bool] = lambda s: s not in IN_FLIGHT_INVOICE) -> None:
        key = f"settle:{label}"
        self._task(key, label, len(invoices))

        def settled() -> bool:
            open_ = [i for i in invoices if not until(i.status) or not i.status]
            for inv in open_:
                self._refresh_invoice(inv)
            done = sum(1 for i in invoices if until(i.status))
            self._set(key, done)
            return done == len(invoices)

        self._poll(settled, label)
