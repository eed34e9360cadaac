"""Matching's tables and every query it makes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    Numeric,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import DateTime

from services.matching.domain import Invoiced
from shared import pagination

TS = DateTime(timezone=True)


class MatchingBase(DeclarativeBase):
    """Matching's own metadata (other services may have tables of the same names)."""


class ToleranceVersion(MatchingBase):
    __tablename__ = "tolerance_policies"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class PurchaseOrderRow(MatchingBase):
    __tablename__ = "purchase_orders"
    po_number: Mapped[str] = mapped_column(Text, primary_key=True)
    po_id: Mapped[str] = mapped_column(Text)
    requisition_id: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(Text)
    supplier_id: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="issued")
    closed_reason: Mapped[str | None] = mapped_column(Text)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    issued_at: Mapped[datetime | None] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class ReceiptRow(MatchingBase):
    __tablename__ = "receipts"
    receipt_id: Mapped[str] = mapped_column(Text, primary_key=True)
    po_number: Mapped[str] = mapped_column(Text)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(TS)


class InvoiceRow(MatchingBase):
    __tablename__ = "invoices"
    invoice_id: Mapped[str] = mapped_column(Text, primary_key=True)
    invoice_number: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    supplier_id: Mapped[str | None] = mapped_column(Text)
    order_reference: Mapped[str | None] = mapped_column(Text)
    po_number: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    payable: Mapped[Decimal] = mapped_column(Numeric)
    preceding_invoice_id: Mapped[str | None] = mapped_column(Text)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(Text)
    counts: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(TS)
    first_seen_at: Mapped[datetime] = mapped_column(TS)
    awaiting_since: Mapped[datetime | None] = mapped_column(TS)
    deadline: Mapped[datetime | None] = mapped_column(TS)
    final_outcome: Mapped[str | None] = mapped_column(Text)
    decisions: Mapped[int] = mapped_column(Integer, default=0)  # match runs so far
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now(), onupdate=func.now())


class InvoicedLine(MatchingBase):
    __tablename__ = "invoiced_lines"
    invoice_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    po_number: Mapped[str] = mapped_column(Text)
    po_line_no: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[Decimal] = mapped_column(Numeric)
    amount: Mapped[Decimal] = mapped_column(Numeric)


class MatchDecisionRow(MatchingBase):
    __tablename__ = "match_decisions"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text)
    po_number: Mapped[str | None] = mapped_column(Text)
    policy_version: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(TS)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB)


class ExceptionRow(MatchingBase):
    __tablename__ = "exceptions"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(Text)
    invoice_number: Mapped[str] = mapped_column(Text)
    po_number: Mapped[str | None] = mapped_column(Text)
    supplier_id: Mapped[str | None] = mapped_column(Text)
    requester: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[str]] = mapped_column(JSONB)
    match_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    assignee: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS)
    resolved_at: Mapped[datetime | None] = mapped_column(TS)
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now(), onupdate=func.now())


class ExceptionAudit(MatchingBase):
    __tablename__ = "exception_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exception_id: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(TS)
    by: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)


# -- locks -------------------------------------------------------------------------------

def lock_document_flow(session: Session, key: str) -> None:
    """Serialise every match touching one PO (or one PO-less invoice) for this transaction."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"matching:{key}"})


def try_lock_document_flow(session: Session, key: str) -> bool:
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"),
                                {"k": f"matching:{key}"}).scalar())


# -- tolerance policy --------------------------------------------------------------------

def current_policy(session: Session) -> ToleranceVersion | None:
    return session.scalars(
        select(ToleranceVersion).order_by(ToleranceVersion.version.desc()).limit(1)).first()


def policy_version(session: Session, version: int) -> ToleranceVersion | None:
    return session.get(ToleranceVersion, version)


def add_policy(session: Session, document: dict[str, Any], created_by: str) -> int:
    lock_document_flow(session, "tolerance-policy")
    latest = session.execute(select(func.max(ToleranceVersion.version))).scalar() or 0
    session.add(ToleranceVersion(version=latest + 1, document=document, created_by=created_by))
    session.flush()
    return latest + 1


# -- purchase orders and receipts --------------------------------------------------------

def insert_po(session: Session, **values: Any) -> bool:
    inserted = session.execute(
        pg_insert(PurchaseOrderRow).values(**values).on_conflict_do_nothing()
        .returning(PurchaseOrderRow.po_number)).first()
    return inserted is not None


def get_po(session: Session, po_number: str) -> PurchaseOrderRow | None:
    return session.get(PurchaseOrderRow, po_number)


def get_po_by_id(session: Session, po_id: str) -> PurchaseOrderRow | None:
    return session.scalars(select(PurchaseOrderRow).where(PurchaseOrderRow.po_id == po_id)).first()


def close_po(session: Session, po_number: str, reason: str) -> None:
    row = session.get(PurchaseOrderRow, po_number)
    if row is None:
        return
    row.status = "closed"
    row.closed_reason = reason
    document = dict(row.document)
    document["status"], document["closed_reason"] = "closed", reason
    row.document = document
    row.updated_at = func.now()


def insert_receipt(session: Session, receipt_id: str, po_number: str,
                   lines: list[dict[str, Any]], received_at: datetime) -> bool:
    inserted = session.execute(
        pg_insert(ReceiptRow).values(receipt_id=receipt_id, po_number=po_number, lines=lines,
                                     received_at=received_at)
        .on_conflict_do_nothing().returning(ReceiptRow.receipt_id)).first()
    return inserted is not None


def received_by_line(session: Session, po_number: str) -> dict[int, Decimal]:
    totals: dict[int, Decimal] = {}
    for lines in session.scalars(select(ReceiptRow.lines).where(ReceiptRow.po_number == po_number)):
        for line in lines:
            n = int(line["line_no"])
            totals[n] = totals.get(n, Decimal(0)) + Decimal(str(line["quantity"]))
    return totals


# -- invoices and the cumulative read model ----------------------------------------------

_INSERT_INVOICE = (pg_insert(InvoiceRow.__table__).on_conflict_do_nothing()
                   .returning(InvoiceRow.__table__.c.invoice_id))


def insert_invoice(session: Session, **values: Any) -> bool:
    # One statement object with parameters (Core, not ORM): compiled once, cached after.
    return session.execute(_INSERT_INVOICE, values).first() is not None


def get_invoice(session: Session, invoice_id: str, *, for_update: bool = False) -> InvoiceRow | None:
    stmt = select(InvoiceRow).where(InvoiceRow.invoice_id == invoice_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def invoices_in_state(session: Session, order_reference: str, states: tuple[str, ...]) -> list[str]:
    return list(session.scalars(
        select(InvoiceRow.invoice_id)
        .where(or_(InvoiceRow.order_reference == order_reference,
                   InvoiceRow.po_number == order_reference),
               InvoiceRow.state.in_(states))
        .order_by(InvoiceRow.first_seen_at, InvoiceRow.invoice_id)))


def claim_due_invoice(session: Session, now: datetime, skip: set[str]) -> InvoiceRow | None:
    stmt = (select(InvoiceRow)
            .where(InvoiceRow.deadline.is_not(None), InvoiceRow.deadline <= now)
            .order_by(InvoiceRow.deadline).limit(1).with_for_update(skip_locked=True))
    if skip:
        stmt = stmt.where(InvoiceRow.invoice_id.not_in(skip))
    return session.scalars(stmt).first()


def prior_invoiced(session: Session, po_number: str, invoice: InvoiceRow) -> dict[int, Invoiced]:
    """What other invoices invoiced on each PO line: those cleared for payment (credit notes
    included, negative) and those still in an open exception that arrived before this one
    (first come, first served: a later invoice in trouble never blocks an earlier one)."""
    earlier = or_(InvoiceRow.first_seen_at < invoice.first_seen_at,
                  and_(InvoiceRow.first_seen_at == invoice.first_seen_at,
                       InvoiceRow.invoice_id < invoice.invoice_id))
    rows = session.execute(
        select(InvoicedLine.po_line_no, func.sum(InvoicedLine.quantity), func.sum(InvoicedLine.amount))
        .join(InvoiceRow, InvoiceRow.invoice_id == InvoicedLine.invoice_id)
        .where(InvoicedLine.po_number == po_number, InvoiceRow.counts.is_(True),
               InvoicedLine.invoice_id != invoice.invoice_id,
               or_(InvoiceRow.state == "cleared", earlier))
        .group_by(InvoicedLine.po_line_no)).all()
    return {int(n): Invoiced(Decimal(q), Decimal(a)) for n, q, a in rows}


def delete_invoiced_lines(session: Session, invoice_id: str) -> None:
    session.execute(delete(InvoicedLine).where(InvoicedLine.invoice_id == invoice_id))


def add_invoiced_lines(session: Session, invoice_id: str, po_number: str,
                       lines: list[tuple[int, Decimal, Decimal]]) -> None:
    if lines:
        session.execute(InvoicedLine.__table__.insert(), [
            {"invoice_id": invoice_id, "seq": seq, "po_number": po_number,
             "po_line_no": po_line_no, "quantity": qty, "amount": amount}
            for seq, (po_line_no, qty, amount) in enumerate(lines, start=1)])


def find_invoice_by_number(session: Session, supplier_id: str | None, invoice_number: str) -> InvoiceRow | None:
    stmt = select(InvoiceRow).where(InvoiceRow.invoice_number == invoice_number,
                                    InvoiceRow.type == "invoice")
    if supplier_id:
        stmt = stmt.where(or_(InvoiceRow.supplier_id == supplier_id, InvoiceRow.supplier_id.is_(None)))
    return session.scalars(stmt.order_by(InvoiceRow.first_seen_at).limit(1)).first()


# -- decisions ---------------------------------------------------------------------------

def add_decision(session: Session, **values: Any) -> str:
    """Insert a decision (the caller gives its `id`); returns the id."""
    session.execute(MatchDecisionRow.__table__.insert(), values)
    return values["id"]


def latest_decision(session: Session, invoice_id: str) -> MatchDecisionRow | None:
    return session.scalars(select(MatchDecisionRow).where(MatchDecisionRow.invoice_id == invoice_id)
                           .order_by(MatchDecisionRow.seq.desc()).limit(1)).first()


def count_decisions(session: Session, invoice_id: str) -> int:
    return session.execute(select(func.count()).select_from(MatchDecisionRow)
                           .where(MatchDecisionRow.invoice_id == invoice_id)).scalar_one()


def latest_inputs(session: Session, since: datetime | None, until: datetime | None
                  ) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(invoice_id, outcome, inputs) of the latest decision of every invoice in the window."""
    latest = (select(MatchDecisionRow.invoice_id, func.max(MatchDecisionRow.seq).label("seq"))
              .group_by(MatchDecisionRow.invoice_id).subquery())
    stmt = (select(MatchDecisionRow.invoice_id, MatchDecisionRow.outcome, MatchDecisionRow.inputs)
            .join(latest, and_(latest.c.invoice_id == MatchDecisionRow.invoice_id,
                               latest.c.seq == MatchDecisionRow.seq))
            .join(InvoiceRow, InvoiceRow.invoice_id == MatchDecisionRow.invoice_id)
            .where(InvoiceRow.type == "invoice")
            .order_by(MatchDecisionRow.invoice_id))
    if since is not None:
        stmt = stmt.where(InvoiceRow.received_at >= since)
    if until is not None:
        stmt = stmt.where(InvoiceRow.received_at < until)
    for row in session.execute(stmt.execution_options(yield_per=1000)):
        yield row[0], row[1], row[2]


# -- exceptions --------------------------------------------------------------------------

def open_exception_for(session: Session, invoice_id: str, *, for_update: bool = False) -> ExceptionRow | None:
    stmt = select(ExceptionRow).where(ExceptionRow.invoice_id == invoice_id,
                                      ExceptionRow.status != "resolved")
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def get_exception(session: Session, exception_id: str, *, for_update: bool = False) -> ExceptionRow | None:
    stmt = select(ExceptionRow).where(ExceptionRow.id == exception_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def add_exception(session: Session, row: ExceptionRow) -> None:
    session.add(row)
    session.flush()


def add_audit(session: Session, exception_id: str, at: datetime, by: str, action: str,
              detail: dict[str, Any]) -> None:
    session.add(ExceptionAudit(exception_id=exception_id, at=at, by=by, action=action, detail=detail))


def audit_trail(session: Session, exception_id: str) -> list[ExceptionAudit]:
    return list(session.scalars(select(ExceptionAudit).where(ExceptionAudit.exception_id == exception_id)
                                .order_by(ExceptionAudit.id)))


def encode_cursor(created_at: datetime, exception_id: str) -> str:
    return pagination.encode_cursor(created_at.isoformat(), exception_id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on anything that is not a cursor this service issued."""
    created_at, exception_id = pagination.decode_cursor(cursor, 2)
    return datetime.fromisoformat(created_at), str(exception_id)


def list_exceptions(session: Session, *, status: str | None, reason: str | None,
                    supplier_id: str | None, assignee: str | None, created_before: datetime | None,
                    after: tuple[datetime, str] | None, limit: int) -> list[ExceptionRow]:
    stmt = select(ExceptionRow)
    if status:
        stmt = stmt.where(ExceptionRow.status == status)
    if reason:
        stmt = stmt.where(ExceptionRow.reasons.contains([reason]))
    if supplier_id:
        stmt = stmt.where(ExceptionRow.supplier_id == supplier_id)
    if assignee:
        stmt = stmt.where(ExceptionRow.assignee == assignee)
    if created_before is not None:
        stmt = stmt.where(ExceptionRow.created_at < created_before)
    if after is not None:
        stmt = stmt.where(or_(ExceptionRow.created_at > after[0],
                              and_(ExceptionRow.created_at == after[0], ExceptionRow.id > after[1])))
    return list(session.scalars(stmt.order_by(ExceptionRow.created_at, ExceptionRow.id).limit(limit)))


def open_exception_counts(session: Session) -> dict[str, int]:
    reason = func.jsonb_array_elements_text(ExceptionRow.reasons).table_valued("value")
    rows = session.execute(
        select(reason.c.value, func.count())
        .select_from(ExceptionRow).join(reason, text("true"))
        .where(ExceptionRow.status != "resolved")
        .group_by(reason.c.value)).all()
    return {r: n for r, n in rows}


def set_invoice_state(session: Session, invoice_id: str, **values: Any) -> None:
    session.execute(update(InvoiceRow).where(InvoiceRow.invoice_id == invoice_id).values(**values))
