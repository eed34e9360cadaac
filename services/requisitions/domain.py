"""Requisitions domain: states, transitions and money arithmetic. Pure: no I/O.

A `Requisition` moves `draft → pending_approval → approved → ordered → partially_received →
received`, with `changes_requested` (editable, resubmittable), `rejected` and `cancelled` on the
side. A `PurchaseOrder` moves `issued → partially_received ⇄ received` as receipts and returns
arrive, and ends `closed` (or `cancelled` when nothing was received) on request.

Every state-changing method records a `HistoryEntry` in `new_history`; an action the current
status forbids raises `InvalidTransition` (HTTP 409), a non-owner raises `NotOwner` (403),
invalid content raises `ValidationFailed` with one `FieldError` per problem (422).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from services.requisitions.codes import CURRENCY_MINOR_UNITS
from services.requisitions.validation import (
    DEFAULT_UOM,
    FieldError,
    LineDraft,
    RequisitionDraft,
    validate_draft,
)


# -- errors -----------------------------------------------------------------------------------
class DomainError(Exception):
    """A business rule said no."""


class InvalidTransition(DomainError):
    def __init__(self, kind: str, action: str, status: str) -> None:
        super().__init__(f"cannot {action} a {kind} in status '{status}'")
        self.kind = kind
        self.action = action
        self.status = status


class NotOwner(DomainError):
    pass


class StaleDecision(DomainError):
    pass


class ValidationFailed(DomainError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors


# -- statuses ---------------------------------------------------------------------------------
class RequisitionStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    ORDERED = "ordered"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    CANCELLED = "cancelled"


class POStatus(StrEnum):
    ISSUED = "issued"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    CLOSED = "closed"
    CANCELLED = "cancelled"


R = RequisitionStatus
EDITABLE = frozenset({R.DRAFT, R.CHANGES_REQUESTED})
SUBMITTABLE = EDITABLE
CANCELLABLE = frozenset({R.DRAFT, R.PENDING_APPROVAL, R.CHANGES_REQUESTED, R.APPROVED})
RECEIVING = frozenset({R.ORDERED, R.PARTIALLY_RECEIVED, R.RECEIVED})
PO_OPEN = frozenset({POStatus.ISSUED, POStatus.PARTIALLY_RECEIVED, POStatus.RECEIVED})
DECISION_OUTCOMES = {
    "approved": R.APPROVED,
    "rejected": R.REJECTED,
    "changes_requested": R.CHANGES_REQUESTED,
}


# -- money ------------------------------------------------------------------------------------
def minor_units(currency: str) -> int:
    return CURRENCY_MINOR_UNITS.get(currency, 2)


def money(amount: Decimal, currency: str) -> Decimal:
    """Quantise an amount to the currency's minor unit, half up (done once, at line level)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def percent_allowance(value: str | Decimal) -> Decimal:
    """Parse an over-receipt allowance in percent; raises ValueError when it is not ≥ 0."""
    try:
        pct = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc
    if not pct.is_finite() or pct < 0:
        raise ValueError(f"must be a non-negative decimal, got {value!r}")
    return pct


def _rfc3339(at: datetime) -> str:
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.isoformat().replace("+00:00", "Z")


# -- the requisition aggregate ---------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    line_no: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    supplier_id: str
    amount: Decimal
    category: str | None = None
    uom: str = DEFAULT_UOM
    receipt_required: bool = True


def lines_from_drafts(drafts: list[LineDraft], currency: str) -> list[Line]:
    return [
        Line(line_no=n, description=d.description.strip(), quantity=d.quantity,
             unit_price=d.unit_price, supplier_id=d.supplier_id,
             amount=money(d.quantity * d.unit_price, currency), category=d.category,
             uom=d.uom, receipt_required=d.receipt_required)
        for n, d in enumerate(drafts, start=1)
    ]


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedOrder:
    """One PO to issue: a supplier and its requisition lines, renumbered 1..n for the PO."""

    supplier_id: str
    lines: list[tuple[int, Line]]  # (po line_no, requisition line)


@dataclass
class Requisition:
    id: str
    requester: str
    title: str
    cost_center: str
    currency: str
    lines: list[Line]
    status: RequisitionStatus = R.DRAFT
    submission: int = 0
    needed_by: date | None = None
    justification: str | None = None
    requester_name: str | None = None
    approval: dict[str, Any] | None = None
    new_history: list[HistoryEntry] = field(default_factory=list)

    # -- creation and queries ---------------------------------------------------------------
    @classmethod
    def create(cls, id: str, requester: str, draft: RequisitionDraft,
               known_suppliers: Iterable[str], now: datetime,
               requester_name: str | None = None) -> Requisition:
        errors = validate_draft(draft, known_suppliers)
        if errors:
            raise ValidationFailed(errors)
        req = cls(id=id, requester=requester, requester_name=requester_name,
                  title=draft.title.strip(), cost_center=draft.cost_center.strip(),
                  currency=draft.currency, needed_by=draft.needed_by,
                  justification=draft.justification,
                  lines=lines_from_drafts(draft.lines, draft.currency))
        req._record(now, requester, "created", None, {"total": str(req.total)})
        return req

    @property
    def total(self) -> Decimal:
        return money(sum((line.amount for line in self.lines), Decimal(0)), self.currency)

    def draft(self) -> RequisitionDraft:
        return RequisitionDraft(
            title=self.title, cost_center=self.cost_center, currency=self.currency,
            needed_by=self.needed_by, justification=self.justification,
            lines=[LineDraft(description=ln.description, quantity=ln.quantity,
                             unit_price=ln.unit_price, supplier_id=ln.supplier_id,
                             category=ln.category, uom=ln.uom,
                             receipt_required=ln.receipt_required) for ln in self.lines])

    def ensure_owner(self, user_id: str) -> None:
        if user_id != self.requester:
            raise NotOwner(f"only the requester ({self.requester}) may do this")

    def _require(self, allowed: frozenset[RequisitionStatus], action: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition("requisition", action, self.status.value)

    def _record(self, now: datetime, actor: str, action: str, to: RequisitionStatus | None,
                detail: dict[str, Any] | None = None) -> None:
        before = self.status if action != "created" else None
        if to is not None:
            self.status = to
        self.new_history.append(HistoryEntry(
            at=now, actor=actor, action=action,
            from_status=before.value if before else None,
            to_status=self.status.value, detail=detail or {}))

    # -- owner's commands -------------------------------------------------------------------
    def edit(self, actor: str, draft: RequisitionDraft, known_suppliers: Iterable[str],
             now: datetime) -> list[str]:
        """Replace the content with `draft`; returns the names of the fields that changed."""
        self.ensure_owner(actor)
        self._require(EDITABLE, "edit")
        errors = validate_draft(draft, known_suppliers)
        if errors:
            raise ValidationFailed(errors)
        new_lines = lines_from_drafts(draft.lines, draft.currency)
        before = {"title": self.title, "cost_center": self.cost_center, "currency": self.currency,
                  "needed_by": self.needed_by, "justification": self.justification,
                  "lines": self.lines}
        after = {"title": draft.title.strip(), "cost_center": draft.cost_center.strip(),
                 "currency": draft.currency, "needed_by": draft.needed_by,
                 "justification": draft.justification, "lines": new_lines}
        changed = [k for k in before if before[k] != after[k]]
        if not changed:
            return []
        old_total = self.total
        self.title, self.cost_center = after["title"], after["cost_center"]
        self.currency, self.needed_by = draft.currency, draft.needed_by
        self.justification, self.lines = draft.justification, new_lines
        detail: dict[str, Any] = {"fields": changed}
        if self.total != old_total:
            detail["total"] = {"from": str(old_total), "to": str(self.total)}
        self._record(now, actor, "updated", None, detail)
        return changed

    def submit(self, actor: str, now: datetime) -> int:
        """Send for approval; returns the submission number (1, 2, … after changes)."""
        self.ensure_owner(actor)
        self._require(SUBMITTABLE, "submit")
        self.submission += 1
        self._record(now, actor, "submitted", R.PENDING_APPROVAL,
                     {"submission": self.submission, "total": str(self.total)})
        return self.submission

    def cancel(self, actor: str, now: datetime, reason: str | None = None) -> None:
        self.ensure_owner(actor)
        self._require(CANCELLABLE, "cancel")
        self._record(now, actor, "cancelled", R.CANCELLED, {"reason": reason} if reason else {})

    # -- approval and ordering --------------------------------------------------------------
    def decide(self, outcome: str, submission: int, decided_by: list[str], at: datetime,
               comment: str | None = None, policy_version: int | None = None) -> None:
        """Apply an approval decision. Raises StaleDecision for another submission's decision
        and InvalidTransition when the requisition is not waiting for one."""
        if outcome not in DECISION_OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if submission != self.submission:
            raise StaleDecision(f"decision for submission {submission}, but the requisition is "
                                f"at submission {self.submission}")
        self._require(frozenset({R.PENDING_APPROVAL}), f"apply a '{outcome}' decision to")
        self.approval = {"outcome": outcome, "decided_by": list(decided_by),
                         "decided_at": _rfc3339(at), "comment": comment,
                         "policy_version": policy_version, "submission": submission}
        detail: dict[str, Any] = {"submission": submission}
        if comment:
            detail["comment"] = comment
        self._record(at, ",".join(decided_by) or "approvals", outcome,
                     DECISION_OUTCOMES[outcome], detail)

    def plan_purchase_orders(self) -> list[PlannedOrder]:
        """One PO per supplier, in order of the supplier's first line."""
        by_supplier: dict[str, list[Line]] = {}
        for line in self.lines:
            by_supplier.setdefault(line.supplier_id, []).append(line)
        return [PlannedOrder(supplier_id=s, lines=list(enumerate(ls, start=1)))
                for s, ls in by_supplier.items()]

    def mark_ordered(self, po_numbers: list[str], now: datetime) -> None:
        self._require(frozenset({R.APPROVED}), "order")
        self._record(now, "requisitions", "ordered", R.ORDERED, {"purchase_orders": po_numbers})

    def reflect_receipts(self, orders: Iterable[PurchaseOrder], actor: str, now: datetime) -> None:
        """Derive ordered / partially_received / received from the POs' received quantities."""
        self._require(RECEIVING, "receive goods for")
        orders = list(orders)
        if orders and all(po.fully_received for po in orders):
            target = R.RECEIVED
        elif any(po.any_received for po in orders):
            target = R.PARTIALLY_RECEIVED
        else:
            target = R.ORDERED
        if target != self.status:
            self._record(now, actor, target.value, target)


# -- the purchase order -----------------------------------------------------------------------
@dataclass(frozen=True)
class POLine:
    line_no: int
    quantity: Decimal
    received: Decimal = Decimal(0)
    receipt_required: bool = True

    @property
    def fully_received(self) -> bool:
        return self.received >= self.quantity


@dataclass(frozen=True)
class ReceiptLineInput:
    line_no: int
    quantity: Decimal  # negative = return


@dataclass
class PurchaseOrder:
    id: str
    number: str
    requisition_id: str
    requester: str
    lines: list[POLine]
    status: POStatus = POStatus.ISSUED

    @property
    def fully_received(self) -> bool:
        return all(line.fully_received for line in self.lines)

    @property
    def any_received(self) -> bool:
        return any(line.received > 0 for line in self.lines)

    def _require_open(self, action: str) -> None:
        if self.status not in PO_OPEN:
            raise InvalidTransition("purchase order", action, self.status.value)

    def receive(self, lines: list[ReceiptLineInput], allowance_pct: Decimal) -> None:
        """Apply a receipt (negative quantities are returns). Cumulative received stays within
        [0, ordered × (1 + allowance/100)]; all-or-nothing."""
        self._require_open("record a receipt on")
        errors: list[FieldError] = []
        if not lines:
            errors.append(FieldError("lines", "min_items", "a receipt needs at least one line"))
        by_no = {line.line_no: line for line in self.lines}
        seen: set[int] = set()
        updated = dict(by_no)
        for i, item in enumerate(lines):
            p = f"lines.{i}"
            if item.line_no in seen:
                errors.append(FieldError(f"{p}.line_no", "duplicate_line",
                                         f"line {item.line_no} appears twice in this receipt"))
                continue
            seen.add(item.line_no)
            line = by_no.get(item.line_no)
            if line is None:
                errors.append(FieldError(f"{p}.line_no", "unknown_line",
                                         f"{self.number} has no line {item.line_no}"))
                continue
            if not item.quantity.is_finite() or item.quantity == 0:
                errors.append(FieldError(f"{p}.quantity", "non_zero",
                                         "quantity must be non-zero (negative for a return)"))
                continue
            total = line.received + item.quantity
            limit = line.quantity * (1 + allowance_pct / 100)
            if total < 0:
                errors.append(FieldError(
                    f"{p}.quantity", "below_zero",
                    f"returning {-item.quantity} would leave line {line.line_no} below zero "
                    f"received (received so far: {line.received})"))
            elif total > limit:
                errors.append(FieldError(
                    f"{p}.quantity", "over_receipt",
                    f"line {line.line_no}: {total} received would exceed the ordered "
                    f"{line.quantity} plus the {allowance_pct}% allowance ({limit})"))
            else:
                updated[item.line_no] = replace(line, received=total)
        if errors:
            raise ValidationFailed(errors)
        self.lines = [updated[line.line_no] for line in self.lines]
        if self.fully_received:
            self.status = POStatus.RECEIVED
        elif self.any_received:
            self.status = POStatus.PARTIALLY_RECEIVED
        else:
            self.status = POStatus.ISSUED

    def close(self, reason: str | None = None) -> str:
        """Close the PO to further receipts; returns the reason (`received` or `cancelled`).
        Without a reason: `received` when anything was received, else `cancelled`."""
        self._require_open("close")
        if reason is None:
            reason = "received" if self.any_received else "cancelled"
        if reason not in ("received", "cancelled"):
            raise ValidationFailed([FieldError("reason", "enum",
                                               "reason must be 'received' or 'cancelled'")])
        if reason == "cancelled" and self.any_received:
            raise InvalidTransition("purchase order with received goods", "cancel",
                                    self.status.value)
        self.status = POStatus.CANCELLED if reason == "cancelled" else POStatus.CLOSED
        return reason
