"""Builders for engine inputs (plain domain objects, no infrastructure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.matching.domain import (
    Invoice,
    Invoiced,
    InvoiceLine,
    MatchInputs,
    PoLine,
    PurchaseOrder,
    supplier_keys,
)
from services.matching.policy import parse_policy

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
D = Decimal


def policy(**default_overrides: str) -> object:
    default = {"price_pct": "2", "price_abs": "5.00", "price_rule": "either",
               "qty_over_ordered_pct": "0", "qty_over_received_pct": "0", "total_abs": "1.00"}
    extra = {k: default_overrides.pop(k) for k in ("suppliers", "categories", "receipt_wait",
                                                   "po_wait") if k in default_overrides}
    default.update(default_overrides)
    return parse_policy({"default": default, **extra})


def po_line(no: int = 1, qty: str = "10", price: str = "100.00", *, description: str = "Laptop 14 inch",
            category: str | None = None, three_way: bool = True) -> PoLine:
    return PoLine(line_no=no, description=description, quantity=D(qty), unit_price=D(price),
                  category=category, receipt_required=three_way)


def purchase_order(*lines: PoLine, supplier_id: str = "SUP-1", currency: str = "EUR",
                   status: str = "issued", closed_reason: str | None = None,
                   vat_id: str | None = "DE123456789", peppol_id: str | None = "0088:4000001000005",
                   po_number: str = "PO-000001") -> PurchaseOrder:
    return PurchaseOrder(
        po_number=po_number, supplier_id=supplier_id,
        supplier_keys=supplier_keys(supplier_id, vat_id, peppol_id), currency=currency,
        lines=lines or (po_line(),), status=status, closed_reason=closed_reason, requester="alice",
        vat_id=vat_id, peppol_id=peppol_id)


def inv_line(po_line_no: str | None = "1", qty: str = "10", price: str = "100.00", *,
             no: str = "1", description: str = "Laptop 14 inch") -> InvoiceLine:
    return InvoiceLine(line_no=no, description=description, quantity=D(qty), unit_price=D(price),
                       net_amount=D(qty) * D(price), po_line_no=po_line_no)


def invoice(*lines: InvoiceLine, supplier_id: str | None = "SUP-1", vat_id: str | None = None,
            peppol_id: str | None = None, currency: str = "EUR", ref: str | None = "PO-000001",
            flags: tuple[str, ...] = (), type_: str = "invoice", net: str | None = None,
            invoice_id: str = "inv-1") -> Invoice:
    lines = lines or (inv_line(),)
    total = D(net) if net is not None else sum((ln.net_amount for ln in lines), D(0))
    return Invoice(invoice_id=invoice_id, invoice_number=f"N-{invoice_id}", type=type_,
                   currency=currency, supplier_id=supplier_id,
                   supplier_keys=supplier_keys(supplier_id, vat_id, peppol_id),
                   order_reference=ref, lines=tuple(lines), net=total, payable=total,
                   flags=flags, vat_id=vat_id, peppol_id=peppol_id)


def inputs(inv: Invoice, po: PurchaseOrder | None, *, received: dict[int, str] | None = None,
           prior: dict[int, str] | None = None, now: datetime = NOW,
           first_seen_at: datetime = NOW, awaiting_since: datetime | None = None) -> MatchInputs:
    return MatchInputs(
        invoice=inv, po=po,
        received={k: D(v) for k, v in (received if received is not None else {1: "10"}).items()},
        prior={k: Invoiced(D(v), D(v) * D(100)) for k, v in (prior or {}).items()},
        first_seen_at=first_seen_at, now=now, awaiting_since=awaiting_since)


def later(**kw: float) -> datetime:
    return NOW + timedelta(**kw)
