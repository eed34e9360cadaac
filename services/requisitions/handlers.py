"""Commands and event handlers of the requisitions service: one unit of work each.

Every function runs inside the caller's transaction (`with session.begin():` in the API, the
consumer runner's transaction for events) and never commits. Domain errors are translated into
problem+json errors here, so a refused command rolls back and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.requisitions import domain, metrics, store, validation
from services.requisitions.domain import (
    InvalidTransition,
    NotOwner,
    PurchaseOrder,
    ReceiptLineInput,
    Requisition,
    StaleDecision,
    ValidationFailed,
)
from shared.auth import User
from shared.contracts.approvals import ApprovalDecided
from shared.contracts.requisitions import (
    GoodsReceiptRecorded,
    PurchaseOrderClosed,
    PurchaseOrderIssued,
    PurchaseOrderLine,
    ReceiptLine,
    RequisitionCancelled,
    RequisitionLine,
    RequisitionSubmitted,
    SupplierIdentifiers,
)
from shared.db import after_commit
from shared.envelope import Envelope
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable, field_error
from shared.outbox import Outbox

log = logging.getLogger(__name__)

# Roles that see every requisition / every purchase order (others see their own).
READ_ALL_REQUISITIONS = ("admin", "auditor", "approver")
READ_ALL_POS = ("admin", "auditor", "approver", "receiver", "ap_clerk")
# A receipt may be dated a little ahead of the server clock (clock skew), not more.
RECEIPT_CLOCK_SKEW = timedelta(minutes=5)
# Deterministic PO ids: the same requisition + supplier always maps to the same id.
_PO_NAMESPACE = uuid.UUID("9b6f4a8e-2f1c-4c53-9a51-5d0c6c1e7a10")

def utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Map domain refusals to problem+json: 422 content, 409 status, 403 ownership."""
    try:
        yield
    except ValidationFailed as exc:
        raise Unprocessable(str(exc), errors=[field_error(e.path, e.rule, e.message)
                                              for e in exc.errors]) from exc
    except InvalidTransition as exc:
        raise Conflict(str(exc), code="invalid-status", current_status=exc.status) from exc
    except NotOwner as exc:
        raise Forbidden(str(exc)) from exc


# -- suppliers --------------------------------------------------------------------------------
def create_supplier(session: Session, user: User,
                    draft: validation.SupplierDraft) -> store.SupplierRow:
    draft = validation.normalise_supplier(draft)
    errors = validation.validate_supplier(draft)
    if errors:
        with domain_errors():
            raise ValidationFailed(errors)
    taken = store.supplier_conflicts(session, draft)
    if taken:
        raise Conflict(f"a supplier with this {', '.join(taken)} already exists",
                       code="duplicate",
                       errors=[field_error(f, "unique", f"another supplier already has this {f}")
                               for f in taken])
    try:
        with session.begin_nested():
            return store.add_supplier(session, draft, user.id, utcnow())
    except IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict("a supplier with this id or identifier already exists",
                       code="duplicate") from exc


def get_supplier(session: Session, supplier_id: str) -> store.SupplierRow:
    row = store.get_supplier(session, supplier_id)
    if row is None:
        raise NotFound(f"supplier '{supplier_id}' does not exist")
    return row


# -- requisitions -----------------------------------------------------------------------------
def _known_suppliers(session: Session, draft: validation.RequisitionDraft) -> set[str]:
    return store.existing_supplier_ids(session, {ln.supplier_id for ln in draft.lines})


def _load(session: Session, req_id: str, *, lock: bool = False) -> Requisition:
    req = store.load_requisition(session, req_id, lock=lock)
    if req is None:
        raise NotFound(f"requisition '{req_id}' does not exist")
    return req


def create_requisition(session: Session, user: User,
                       draft: validation.RequisitionDraft) -> Requisition:
    now = utcnow()
    with domain_errors():
        req = Requisition.create(str(uuid.uuid4()), user.id, draft,
                                 _known_suppliers(session, draft), now,
                                 requester_name=user.name)
    store.save_requisition(session, req, now)
    return req


def update_requisition(session: Session, user: User, req_id: str,
                       changes: dict[str, Any]) -> Requisition:
    """`changes` holds the fields the caller sent (lines as LineDrafts); lines replace all."""
    req = _load(session, req_id, lock=True)
    with domain_errors():
        req.ensure_owner(user.id)
        draft = replace(req.draft(), **changes)
        changed = req.edit(user.id, draft, _known_suppliers(session, draft), utcnow())
    if changed:
        store.save_requisition(session, req, utcnow(),
                               lines_changed=bool({"lines", "currency"} & set(changed)))
    return req


def submit_requisition(session: Session, outbox: Outbox, user: User, req_id: str) -> Requisition:
    req = _load(session, req_id, lock=True)
    now = utcnow()
    with domain_errors():
        submission = req.submit(user.id, now)
    store.save_requisition(session, req, now)
    outbox.add(session, RequisitionSubmitted(
        requisition_id=req.id, submission=submission, title=req.title, requester=req.requester,
        requester_name=req.requester_name, cost_center=req.cost_center, currency=req.currency,
        total=req.total, needed_by=req.needed_by, justification=req.justification,
        lines=[RequisitionLine(line_no=ln.line_no, description=ln.description,
                               category=ln.category, quantity=ln.quantity, uom=ln.uom,
                               unit_price=ln.unit_price, amount=ln.amount,
                               supplier_id=ln.supplier_id, receipt_required=ln.receipt_required)
               for ln in req.lines],
        submitted_at=now,
    ), correlation_id=req.id)
    after_commit(session, metrics.REQUISITIONS_SUBMITTED.inc)
    return req


def cancel_requisition(session: Session, outbox: Outbox, user: User, req_id: str,
                       reason: str | None) -> Requisition:
    req = _load(session, req_id, lock=True)
    now = utcnow()
    with domain_errors():
        req.cancel(user.id, now, reason)
    store.save_requisition(session, req, now)
    outbox.add(session, RequisitionCancelled(requisition_id=req.id, cancelled_by=user.id,
                                             reason=reason, cancelled_at=now),
               correlation_id=req.id)
    return req


def read_requisition(session: Session, user: User, req_id: str) -> Requisition:
    req = _load(session, req_id)
    if req.requester != user.id and not user.has(*READ_ALL_REQUISITIONS):
        raise Forbidden("only the requester, approvers, admins and auditors may read it")
    return req


# -- approval decisions -----------------------------------------------------------------------
def on_approval_decided(outbox: Outbox, session: Session, event_: ApprovalDecided,
                        envelope: Envelope) -> None:
    req = store.load_requisition(session, event_.requisition_id, lock=True)
    if req is None:
        log.warning("ignoring decision %s: requisition %s does not exist", envelope.id,
                    event_.requisition_id)
        return
    try:
        req.decide(event_.outcome, event_.submission, event_.decided_by, event_.decided_at,
                   comment=event_.comment, policy_version=event_.policy_version)
    except (StaleDecision, InvalidTransition) as exc:
        log.warning("ignoring decision %s (%s) for requisition %s: %s", envelope.id,
                    event_.outcome, req.id, exc)
        return
    now = utcnow()
    if event_.outcome == "approved":
        _issue_purchase_orders(session, outbox, req, now)
        req.mark_ordered(store.po_numbers_by_requisition(session, [req.id])[req.id], now)
    store.save_requisition(session, req, now)


def _issue_purchase_orders(session: Session, outbox: Outbox, req: Requisition,
                           now: datetime) -> None:
    for planned in req.plan_purchase_orders():
        supplier = store.get_supplier(session, planned.supplier_id)
        if supplier is None:  # suppliers are never deleted; a broken invariant must retry/DLQ
            raise RuntimeError(f"supplier {planned.supplier_id} of {req.id} is missing")
        po_id = str(uuid.uuid5(_PO_NAMESPACE, f"{req.id}/{planned.supplier_id}"))
        number = store.next_po_number(session)
        if not store.insert_purchase_order(session, po_id=po_id, number=number, req=req,
                                           planned=planned, now=now):
            log.warning("requisition %s already has a PO for supplier %s; not issuing another",
                        req.id, planned.supplier_id)
            continue
        lines = [PurchaseOrderLine(line_no=n, description=ln.description, category=ln.category,
                                   quantity=ln.quantity, uom=ln.uom, unit_price=ln.unit_price,
                                   receipt_required=ln.receipt_required)
                 for n, ln in planned.lines]
        outbox.add(session, PurchaseOrderIssued(
            po_id=po_id, po_number=number, requisition_id=req.id, requester=req.requester,
            cost_center=req.cost_center, supplier_id=supplier.id,
            supplier_identifiers=SupplierIdentifiers(
                id=supplier.id, name=supplier.name, vat_id=supplier.vat_id,
                peppol_id=supplier.peppol_id, identifiers=list(supplier.identifiers or [])),
            currency=req.currency,
            total=domain.money(sum((ln.amount for _, ln in planned.lines), Decimal(0)),
                               req.currency),
            lines=lines, issued_at=now,
        ), correlation_id=req.id)
        after_commit(session, metrics.PURCHASE_ORDERS_ISSUED.inc)


# -- purchase orders and receipts -------------------------------------------------------------
def _po_row(session: Session, ref: str, *, lock: bool = False) -> store.PurchaseOrderRow:
    row = store.find_po_row(session, ref, lock=lock)
    if row is None:
        raise NotFound(f"purchase order '{ref}' does not exist")
    return row


def read_po(session: Session, user: User, ref: str) -> store.PurchaseOrderRow:
    row = _po_row(session, ref)
    if row.requester != user.id and not user.has(*READ_ALL_POS):
        raise Forbidden("only the requester, receivers, AP clerks, approvers, admins and "
                        "auditors may read purchase orders")
    return row


@dataclass(frozen=True)
class ReceiptResult:
    receipt: store.ReceiptRow
    lines: list[ReceiptLineInput]
    po: store.PurchaseOrderRow


def record_receipt(session: Session, outbox: Outbox, user: User, ref: str,
                   lines: list[ReceiptLineInput], received_at: datetime | None, note: str | None,
                   allowance_pct: Decimal) -> ReceiptResult:
    row = _po_row(session, ref, lock=True)  # serialises receipts on one PO
    if not user.has("receiver") and user.id != row.requester:
        raise Forbidden("only receivers and the requester may record receipts")
    now = utcnow()
    po = store.po_to_domain(row, store.po_lines(session, [row.id])[row.id])
    with domain_errors():
        po.receive(lines, allowance_pct)
    if received_at is not None and received_at > now + RECEIPT_CLOCK_SKEW:
        raise Unprocessable("received_at is in the future", errors=[
            field_error("received_at", "not_future", "goods cannot be received in the future")])
    received_at = received_at or now
    req = _load(session, row.requisition_id, lock=True)
    others = [p for p in store.pos_of_requisition(session, req.id) if p.id != po.id]
    with domain_errors():
        req.reflect_receipts([po, *others], user.id, now)
    store.save_po_progress(session, po)
    receipt_id = str(uuid.uuid4())
    receipt = store.add_receipt(session, receipt_id=receipt_id, po_id=po.id,
                                received_at=received_at, recorded_at=now, recorded_by=user.id,
                                note=note, lines=lines)
    store.save_requisition(session, req, now)
    outbox.add(session, GoodsReceiptRecorded(
        receipt_id=receipt_id, po_id=po.id, po_number=po.number,
        lines=[ReceiptLine(line_no=ln.line_no, quantity=ln.quantity) for ln in lines],
        received_at=received_at, recorded_by=user.id, note=note,
    ), correlation_id=req.id)
    after_commit(session, metrics.GOODS_RECEIPTS_RECORDED.inc)
    session.refresh(row)
    return ReceiptResult(receipt=receipt, lines=lines, po=row)


def close_po(session: Session, outbox: Outbox, user: User, ref: str,
             reason: str | None) -> store.PurchaseOrderRow:
    row = _po_row(session, ref, lock=True)
    if not user.has("admin") and user.id != row.requester:
        raise Forbidden("only admins and the requester may close a purchase order")
    po: PurchaseOrder = store.po_to_domain(row, store.po_lines(session, [row.id])[row.id])
    now = utcnow()
    with domain_errors():
        reason = po.close(reason)
    store.save_po_progress(session, po, closed_at=now, close_reason=reason)
    outbox.add(session, PurchaseOrderClosed(po_id=po.id, po_number=po.number, reason=reason,
                                            closed_at=now),
               correlation_id=row.requisition_id)
    session.refresh(row)
    return row
