"""Matching's domain: documents as the engine sees them, checks, decisions, exception cases.

Pure: no web, ORM, broker or workflow imports. The engine (`engine.py`) and the tolerance
policy (`policy.py`) build on these types.

Arithmetic and rounding (the documented rules):
- All quantities, prices and amounts are `Decimal`, computed exactly (context precision 28).
- A percentage tolerance is `base × pct / 100`, rounded half-up to 4 decimal places
  (`QTY_Q`), the precision of unit prices and quantities on the wire.
- Amounts derived from several lines (accepted variance) are rounded half-up to 2 decimal
  places (`MONEY_Q`) once, at the end.
- A check passes when `variance <= tolerance` (at the limit passes, a hair above fails);
  variance is always `actual - expected`, so under-billing never fails a check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

QTY_Q = Decimal("0.0001")
MONEY_Q = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)


def pct_of(base: Decimal, pct: Decimal) -> Decimal:
    if not pct:
        return ZERO
    return (base * pct / HUNDRED).quantize(QTY_Q, ROUND_HALF_UP)


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_Q, ROUND_HALF_UP)


class Rule:
    PO_NOT_FOUND = "PO_NOT_FOUND"
    SUPPLIER_MISMATCH = "SUPPLIER_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    PO_CLOSED = "PO_CLOSED"
    DUPLICATE_SUSPECTED = "DUPLICATE_SUSPECTED"
    LINE_NOT_ON_PO = "LINE_NOT_ON_PO"
    PRICE_VARIANCE = "PRICE_VARIANCE"
    QTY_OVER_ORDERED = "QTY_OVER_ORDERED"
    QTY_OVER_RECEIVED = "QTY_OVER_RECEIVED"
    TOTAL_VARIANCE = "TOTAL_VARIANCE"
    MISSING_RECEIPT = "MISSING_RECEIPT"


RULES = (
    Rule.PO_NOT_FOUND, Rule.SUPPLIER_MISMATCH, Rule.CURRENCY_MISMATCH, Rule.PO_CLOSED,
    Rule.DUPLICATE_SUSPECTED, Rule.LINE_NOT_ON_PO, Rule.PRICE_VARIANCE, Rule.QTY_OVER_ORDERED,
    Rule.QTY_OVER_RECEIVED, Rule.TOTAL_VARIANCE, Rule.MISSING_RECEIPT,
)


class Outcome:
    MATCHED = "matched"
    AWAITING_RECEIPT = "awaiting_receipt"
    AWAITING_PO = "awaiting_po"
    EXCEPTION = "exception"


FINAL_OUTCOMES = (Outcome.MATCHED, Outcome.EXCEPTION)

_ID_NOISE = re.compile(r"[\s\-./]")


def normalise_id(value: str) -> str:
    """Identifiers compare without case, spaces, dashes, dots or slashes."""
    return _ID_NOISE.sub("", value).upper()


def normalise_po_number(value: str) -> str:
    return value.strip().upper()


def normalise_line_no(value: str | int) -> str:
    text = str(value).strip()
    stripped = text.lstrip("0")
    return stripped if stripped else ("0" if text else "")


def supplier_keys(*values: str | None, identifiers: tuple[str, ...] | list[str] = ()) -> frozenset[str]:
    keys = {normalise_id(v) for v in values if v}
    keys.update(normalise_id(v) for v in identifiers if v)
    keys.discard("")
    return frozenset(keys)


# -- documents ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PoLine:
    line_no: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    category: str | None = None
    receipt_required: bool = True


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    po_number: str
    supplier_id: str
    supplier_keys: frozenset[str]
    currency: str
    lines: tuple[PoLine, ...]
    status: str = "issued"  # issued | closed
    closed_reason: str | None = None  # received | cancelled
    requester: str | None = None
    vat_id: str | None = None
    peppol_id: str | None = None
    identifiers: tuple[str, ...] = ()
    by_no: dict[str, PoLine] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.by_no:
            self.by_no.update({normalise_line_no(pl.line_no): pl for pl in self.lines})


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    line_no: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    net_amount: Decimal
    po_line_no: str | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    invoice_id: str
    invoice_number: str
    type: str  # invoice | credit_note
    currency: str
    supplier_id: str | None
    supplier_keys: frozenset[str]
    order_reference: str | None
    lines: tuple[InvoiceLine, ...]
    net: Decimal
    payable: Decimal
    flags: tuple[str, ...] = ()
    preceding_invoice_id: str | None = None
    vat_id: str | None = None
    peppol_id: str | None = None
    identifiers: tuple[str, ...] = ()

    @property
    def is_credit_note(self) -> bool:
        return self.type == "credit_note"


@dataclass(frozen=True, slots=True)
class Invoiced:
    """Cumulative quantity and amount already invoiced on one PO line (credit notes netted)."""

    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class MatchInputs:
    """Everything a decision depends on; stored as JSON with the decision and replayable."""

    invoice: Invoice
    po: PurchaseOrder | None
    received: dict[int, Decimal]  # PO line -> cumulative received quantity
    prior: dict[int, Invoiced]  # PO line -> invoiced by other invoices (this one excluded)
    first_seen_at: datetime  # when matching first saw the invoice (start of po_wait)
    now: datetime
    awaiting_since: datetime | None = None  # when it first waited for a receipt


# -- decisions ----------------------------------------------------------------------------

class Check:
    """One rule applied to one line (or the header): explainable, passed or not."""

    __slots__ = (
        "actual",
        "detail",
        "expected",
        "line_no",
        "passed",
        "po_line_no",
        "rule",
        "tolerance",
        "variance",
    )

    def __init__(self, rule: str, passed: bool, *, line_no: str | None = None,
                 po_line_no: int | None = None, expected: Any = None, actual: Any = None,
                 tolerance: Any = None, variance: Decimal | None = None,
                 detail: dict[str, Any] | None = None) -> None:
        self.rule = rule
        self.passed = passed
        self.line_no = line_no
        self.po_line_no = po_line_no
        self.expected = expected
        self.actual = actual
        self.tolerance = tolerance
        self.variance = variance
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "line_no": self.line_no,
            "po_line_no": self.po_line_no,
            "expected": _wire(self.expected),
            "actual": _wire(self.actual),
            "tolerance": _wire(self.tolerance),
            "variance": _wire(self.variance),
            "passed": self.passed,
        }
        if self.detail:
            out["detail"] = {k: _wire(v) for k, v in self.detail.items()}
        return out

    def __repr__(self) -> str:
        return f"Check({self.to_json()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Check) and self.to_json() == other.to_json()


def _wire(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str
    checks: tuple[Check, ...]
    policy_version: int
    wait_until: datetime | None = None
    awaiting_lines: tuple[str, ...] = ()
    accepted_variance: Decimal = ZERO
    # (invoice line no, PO line no, index of the invoice line) for the cumulative read model
    pairings: tuple[tuple[str, int, int], ...] = ()

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def reasons(self) -> list[str]:
        """Distinct failed rules, in check order. When the receipt wait has run out, the
        shortage is reported as MISSING_RECEIPT alone (its QTY_OVER_RECEIVED checks stay
        recorded as failed)."""
        seen: list[str] = []
        for c in self.checks:
            if not c.passed and c.rule not in seen:
                seen.append(c.rule)
        if Rule.MISSING_RECEIPT in seen:
            seen.remove(Rule.QTY_OVER_RECEIVED)
        return seen

    @property
    def is_final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES

    def checks_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.checks]


def accepted_variance(checks: list[dict[str, Any]] | tuple[Check, ...]) -> Decimal:
    """Amount billed above the PO that accepting these checks lets through (≥ 0, 2 dp).

    Σ over price checks of max(variance, 0) × invoiced quantity, plus max(total variance, 0).
    Works on checks or their JSON form (an exception being accepted later).
    """
    total = ZERO
    for c in checks:
        rule, variance, detail = (
            (c.rule, c.variance, c.detail) if isinstance(c, Check)
            else (c["rule"], c.get("variance"), c.get("detail"))
        )
        if variance is None:
            continue
        variance = Decimal(variance)
        if variance <= 0:
            continue
        if rule == Rule.PRICE_VARIANCE:
            qty = Decimal((detail or {}).get("quantity", "0"))
            total += variance * qty
        elif rule == Rule.TOTAL_VARIANCE:
            total += variance
    return money(total)


# -- serialisation of inputs (stored with each decision, replayed by simulate) ------------

def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def invoice_to_json(inv: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": inv.invoice_id, "invoice_number": inv.invoice_number, "type": inv.type,
        "currency": inv.currency, "supplier_id": inv.supplier_id, "vat_id": inv.vat_id,
        "peppol_id": inv.peppol_id, "identifiers": list(inv.identifiers),
        "order_reference": inv.order_reference, "net": str(inv.net), "payable": str(inv.payable),
        "flags": list(inv.flags), "preceding_invoice_id": inv.preceding_invoice_id,
        "lines": [
            {"line_no": ln.line_no, "description": ln.description, "quantity": str(ln.quantity),
             "unit_price": str(ln.unit_price), "net_amount": str(ln.net_amount),
             "po_line_no": ln.po_line_no}
            for ln in inv.lines
        ],
    }


def invoice_from_json(d: dict[str, Any]) -> Invoice:
    return Invoice(
        invoice_id=d["invoice_id"], invoice_number=d["invoice_number"], type=d["type"],
        currency=d["currency"], supplier_id=d.get("supplier_id"),
        supplier_keys=supplier_keys(d.get("supplier_id"), d.get("vat_id"), d.get("peppol_id"),
                                    identifiers=d.get("identifiers") or ()),
        order_reference=d.get("order_reference"),
        lines=tuple(
            InvoiceLine(line_no=ln["line_no"], description=ln["description"],
                        quantity=_d(ln["quantity"]), unit_price=_d(ln["unit_price"]),
                        net_amount=_d(ln["net_amount"]), po_line_no=ln.get("po_line_no"))
            for ln in d["lines"]
        ),
        net=_d(d["net"]), payable=_d(d["payable"]), flags=tuple(d.get("flags") or ()),
        preceding_invoice_id=d.get("preceding_invoice_id"), vat_id=d.get("vat_id"),
        peppol_id=d.get("peppol_id"), identifiers=tuple(d.get("identifiers") or ()),
    )


def po_to_json(po: PurchaseOrder) -> dict[str, Any]:
    return {
        "po_number": po.po_number, "supplier_id": po.supplier_id, "vat_id": po.vat_id,
        "peppol_id": po.peppol_id, "identifiers": list(po.identifiers), "currency": po.currency,
        "status": po.status, "closed_reason": po.closed_reason, "requester": po.requester,
        "lines": [
            {"line_no": pl.line_no, "description": pl.description, "category": pl.category,
             "quantity": str(pl.quantity), "unit_price": str(pl.unit_price),
             "receipt_required": pl.receipt_required}
            for pl in po.lines
        ],
    }


def po_from_json(d: dict[str, Any]) -> PurchaseOrder:
    return PurchaseOrder(
        po_number=d["po_number"], supplier_id=d["supplier_id"],
        supplier_keys=supplier_keys(d["supplier_id"], d.get("vat_id"), d.get("peppol_id"),
                                    identifiers=d.get("identifiers") or ()),
        currency=d["currency"],
        lines=tuple(
            PoLine(line_no=int(pl["line_no"]), description=pl["description"],
                   category=pl.get("category"), quantity=_d(pl["quantity"]),
                   unit_price=_d(pl["unit_price"]),
                   receipt_required=bool(pl.get("receipt_required", True)))
            for pl in d["lines"]
        ),
        status=d.get("status") or "issued", closed_reason=d.get("closed_reason"),
        requester=d.get("requester"), vat_id=d.get("vat_id"), peppol_id=d.get("peppol_id"),
        identifiers=tuple(d.get("identifiers") or ()),
    )


def inputs_to_json(inputs: MatchInputs) -> dict[str, Any]:
    return {
        "invoice": invoice_to_json(inputs.invoice),
        "po": po_to_json(inputs.po) if inputs.po is not None else None,
        "received": {str(k): str(v) for k, v in sorted(inputs.received.items())},
        "prior": {str(k): {"quantity": str(v.quantity), "amount": str(v.amount)}
                  for k, v in sorted(inputs.prior.items())},
        "first_seen_at": inputs.first_seen_at.isoformat(),
        "now": inputs.now.isoformat(),
        "awaiting_since": inputs.awaiting_since.isoformat() if inputs.awaiting_since else None,
    }


def inputs_from_json(d: dict[str, Any]) -> MatchInputs:
    return MatchInputs(
        invoice=invoice_from_json(d["invoice"]),
        po=po_from_json(d["po"]) if d.get("po") else None,
        received={int(k): _d(v) for k, v in (d.get("received") or {}).items()},
        prior={int(k): Invoiced(_d(v["quantity"]), _d(v["amount"]))
               for k, v in (d.get("prior") or {}).items()},
        first_seen_at=_dt(d["first_seen_at"]),  # type: ignore[arg-type]
        now=_dt(d["now"]),  # type: ignore[arg-type]
        awaiting_since=_dt(d.get("awaiting_since")),
    )


# -- exception cases ----------------------------------------------------------------------

class CaseConflict(Exception):
    """An action the exception's state does not allow (→ 409)."""


class SegregationOfDuties(Exception):
    """The resolver requested the goods (→ 403)."""


ACTIONS = ("accept", "reject", "request_credit_note", "rematch")
OPEN_STATES = ("open", "waiting_supplier")


@dataclass
class ExceptionCase:
    status: str  # open | waiting_supplier | resolved
    requester: str | None

    def check_can_assign(self) -> None:
        if self.status not in OPEN_STATES:
            raise CaseConflict(f"the exception is {self.status}; it can no longer be assigned")

    def check_can_resolve(self, user_id: str, action: str) -> None:
        if self.requester is not None and user_id == self.requester:
            raise SegregationOfDuties(
                "segregation of duties: the requester of the purchase order's requisition "
                "cannot resolve its invoice exception")
        if self.status not in OPEN_STATES:
            raise CaseConflict("the exception is already resolved")
        if action == "request_credit_note" and self.status == "waiting_supplier":
            raise CaseConflict("a credit note has already been requested for this exception")

    def status_after(self, action: str) -> str:
        return "waiting_supplier" if action == "request_credit_note" else "resolved"
