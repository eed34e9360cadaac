"""Tables of the invoices service and every query it makes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Numeric,
    Text,
    bindparam,
    delete,
    func,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.invoices.domain import DUPLICATE_WINDOW_DAYS, Candidate

_MAX_KEY_BYTES = 400  # a B-tree entry must stay well under PostgreSQL's ~2.7 kB limit


def _bounded(value: str) -> str:
    """Key values as stored in unique indexes: long ones by their SHA-256 (equal stays equal)."""
    if len(value.encode()) <= _MAX_KEY_BYTES:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


class Base(DeclarativeBase):
    """The invoices service's own metadata (its database holds nothing else but outbox/inbox)."""


class InvoiceRow(Base):
    __tablename__ = "invoices"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)  # list order / cursor
    source_format: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    invoice_number: Mapped[str] = mapped_column(Text)
    number_norm: Mapped[str] = mapped_column(Text)
    supplier_id: Mapped[str | None] = mapped_column(Text)
    supplier_name: Mapped[str | None] = mapped_column(Text)
    issue_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(Text)
    gross: Mapped[Decimal] = mapped_column(Numeric)
    payable: Mapped[Decimal] = mapped_column(Numeric)
    order_reference: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    duplicate_of: Mapped[str | None] = mapped_column(Text)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the normalised invoice
    match: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # latest matching outcome
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("invoices_status_seq", "status", "seq"),
        Index("invoices_supplier_seq", "supplier_id", "seq"),
        Index("invoices_order_reference_seq", "order_reference", "seq"),
        Index("invoices_duplicate_candidates", "gross", "currency", "issue_date"),
    )


class SupplierKeyRow(Base):
    """One row per supplier identity key of an invoice: the exact-duplicate constraint."""

    __tablename__ = "invoice_supplier_keys"

    supplier_key: Mapped[str] = mapped_column(Text, primary_key=True)
    number_norm: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)


class OriginalRow(Base):
    __tablename__ = "invoice_originals"

    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    content_type: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class StatusChangeRow(Base):
    __tablename__ = "invoice_status_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    status: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SupplierDirectoryRow(Base):
    """Supplier identifiers learnt from `purchase_order.issued` (identifier key → supplier id)."""

    __tablename__ = "supplier_directory"

    identifier: Mapped[str] = mapped_column(Text, primary_key=True)
    supplier_id: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_INVOICES = InvoiceRow.__table__
_HISTORY = StatusChangeRow.__table__


# --- intake --------------------------------------------------------------------------------------

def find_invoice_id(session: Session, keys: list[str], number_norm: str, type_: str) -> str | None:
    """The invoice of this supplier (any of its keys) with this normalised number and type."""
    return session.execute(
        select(SupplierKeyRow.invoice_id)
        .where(SupplierKeyRow.supplier_key.in_([_bounded(k) for k in keys]),
               SupplierKeyRow.number_norm == _bounded(number_norm), SupplierKeyRow.type == type_)
        .limit(1)
    ).scalar_one_or_none()


# Built once with bind parameters: intake runs it for every invoice, and building the
# statement (and its cache key) cost more than PostgreSQL's answer.
_SUSPECTS = (
    select(_INVOICES.c.id, _INVOICES.c.number_norm, _INVOICES.c.issue_date)
    .where(_INVOICES.c.id.in_(
               select(SupplierKeyRow.__table__.c.invoice_id).where(
                   SupplierKeyRow.__table__.c.supplier_key.in_(bindparam("keys", expanding=True)),
                   SupplierKeyRow.__table__.c.type == bindparam("type"))),
           _INVOICES.c.currency == bindparam("currency"),
           _INVOICES.c.gross == bindparam("gross"),
           _INVOICES.c.issue_date.between(bindparam("earliest"), bindparam("latest")))
    .order_by(_INVOICES.c.seq)
    .limit(50)
)


def suspect_candidates(session: Session, keys: list[str], type_: str, currency: str,
                       gross: Decimal, issue_date: date) -> list[Candidate]:
    window = timedelta(days=DUPLICATE_WINDOW_DAYS)
    earliest = issue_date - window if issue_date > date.min + window else date.min
    latest = issue_date + window if issue_date < date.max - window else date.max
    if not keys:
        return []
    rows = session.execute(_SUSPECTS, {
        "keys": [_bounded(k) for k in keys], "type": type_, "currency": currency,
        "gross": gross, "earliest": earliest, "latest": latest}).all()
    return [Candidate(id=r.id, number_norm=r.number_norm, issue_date=r.issue_date) for r in rows]


class KeyTaken(Exception):
    """Another invoice already holds one of the supplier keys for this number and type."""

    def __init__(self, invoice_id: str) -> None:
        super().__init__(invoice_id)
        self.invoice_id = invoice_id


def add_invoice(session: Session, row: InvoiceRow, keys: list[str], content_type: str,
                original: bytes) -> None:
    """Insert the invoice with its keys, original and first status; raises `KeyTaken` (having
    left nothing inserted) when an invoice already holds one of its keys. A concurrent
    identical insert waits on the unique key until the first commits, then finds it here.
    Core statements and no savepoint: this is the intake's hot path; the rare duplicate
    deletes what it inserted instead."""
    invoice = {c.key: getattr(row, c.key) for c in _INVOICES.columns if c.key != "seq"}
    if invoice["match"] is None:
        invoice["match"] = null()  # SQL NULL, as the ORM wrote it, not JSON 'null'
    session.execute(_INVOICES.insert(), invoice)
    number = _bounded(row.number_norm)
    # One statement, keys in one order everywhere: no deadlocks between concurrent intakes.
    keys_ = sorted({_bounded(k) for k in keys})
    inserted = set(session.execute(
        pg_insert(SupplierKeyRow.__table__)
        .values([{"supplier_key": k, "number_norm": number, "type": row.type,
                  "invoice_id": row.id} for k in keys_])
        .on_conflict_do_nothing()
        .returning(SupplierKeyRow.__table__.c.supplier_key)
    ).scalars()) if keys_ else set()
    taken = [k for k in keys_ if k not in inserted]
    if taken:
        holder = session.execute(
            select(SupplierKeyRow.invoice_id).where(
                SupplierKeyRow.supplier_key == taken[0],
                SupplierKeyRow.number_norm == number,
                SupplierKeyRow.type == row.type)
        ).scalar_one()
        session.execute(delete(SupplierKeyRow.__table__).where(
            SupplierKeyRow.__table__.c.invoice_id == row.id))
        session.execute(delete(_INVOICES).where(_INVOICES.c.id == row.id))
        raise KeyTaken(holder)
    session.execute(OriginalRow.__table__.insert(), {
        "invoice_id": row.id, "content_type": content_type, "body": original})
    session.execute(_HISTORY.insert(), {
        "invoice_id": row.id, "status": row.status, "event_type": None, "event_id": None,
        "at": row.received_at})


# --- reads ---------------------------------------------------------------------------------------

def get_invoice(session: Session, invoice_id: str) -> InvoiceRow | None:
    return session.get(InvoiceRow, invoice_id)


def get_original(session: Session, invoice_id: str) -> OriginalRow | None:
    return session.get(OriginalRow, invoice_id)


def status_history(session: Session, invoice_id: str) -> list[StatusChangeRow]:
    return list(session.execute(
        select(StatusChangeRow).where(StatusChangeRow.invoice_id == invoice_id)
        .order_by(StatusChangeRow.id)
    ).scalars())


def list_invoices(session: Session, *, status: str | None, supplier_id: str | None,
                  po_number: str | None, limit: int, before_seq: int | None) -> list[InvoiceRow]:
    """Newest first; `before_seq` is the cursor (the last row's `seq` of the previous page)."""
    q = select(InvoiceRow).order_by(InvoiceRow.seq.desc()).limit(limit)
    if status:
        q = q.where(InvoiceRow.status == status)
    if supplier_id:
        q = q.where(InvoiceRow.supplier_id == supplier_id)
    if po_number:
        q = q.where(InvoiceRow.order_reference == po_number)
    if before_seq is not None:
        q = q.where(InvoiceRow.seq < before_seq)
    return list(session.execute(q).scalars())


# --- status projection ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StatusRow:
    """What the status projection reads of an invoice (not its document)."""

    id: str
    status: str
    match: dict[str, Any] | None


def lock_status(session: Session, invoice_id: str) -> StatusRow | None:
    found = session.execute(
        select(_INVOICES.c.id, _INVOICES.c.status, _INVOICES.c.match)
        .where(_INVOICES.c.id == invoice_id).with_for_update()
    ).first()
    return StatusRow(found.id, found.status, found.match) if found is not None else None


def record_status(session: Session, row: StatusRow, status: str | None,
                  match: dict[str, Any] | None, event_type: str, event_id: str,
                  at: datetime, *, new_decision: bool = False) -> None:
    """Apply a status change (None: none) and record what matching said: a new decision
    replaces the previous outcome, later facts (resolution, clearing) are added to it."""
    values: dict[str, Any] = {"updated_at": at}
    if match is not None:
        values["match"] = dict(match) if new_decision else {**(row.match or {}), **match}
    if status is not None:
        values["status"] = status
        session.execute(_HISTORY.insert(), {"invoice_id": row.id, "status": status,
                                            "event_type": event_type, "event_id": event_id,
                                            "at": at})
    session.execute(update(_INVOICES).where(_INVOICES.c.id == row.id).values(**values))


_MOVE_STATUS = text("""
    WITH moved AS (
        UPDATE invoices AS i SET status = :to_status, updated_at = :at
        FROM unnest(CAST(:ids AS text[]), CAST(:event_ids AS text[])) AS p(id, event_id)
        WHERE i.id = p.id AND i.status = :from_status
        RETURNING i.id, p.event_id)
    INSERT INTO invoice_status_history (invoice_id, status, event_type, event_id, at)
    SELECT id, :to_status, :event_type, event_id, :at FROM moved
""")


def move_status(session: Session, published: list[tuple[str, str]], from_status: str,
                to_status: str, event_type: str, at: datetime) -> None:
    """`from_status` → `to_status` for those of these (invoice id, event id) pairs still in
    `from_status`, with a history row each; one statement."""
    session.execute(_MOVE_STATUS, {"ids": [i for i, _ in published],
                                 "event_ids": [e for _, e in published],
                                 "from_status": from_status, "to_status": to_status,
                                 "event_type": event_type, "at": at})


# --- supplier directory --------------------------------------------------------------------------

def resolve_supplier(session: Session, identifiers: list[str]) -> str | None:
    if not identifiers:
        return None
    bounded = [_bounded(i) for i in identifiers]
    found = session.execute(
        select(SupplierDirectoryRow.identifier, SupplierDirectoryRow.supplier_id)
        .where(SupplierDirectoryRow.identifier.in_(bounded))
    ).all()
    by_key = {r.identifier: r.supplier_id for r in found}
    for ident in bounded:  # the caller's order is the priority (VAT, PEPPOL, party ids)
        if ident in by_key:
            return by_key[ident]
    return None


def remember_supplier(session: Session, supplier_id: str, identifiers: list[str],
                      at: datetime) -> None:
    for ident in sorted({_bounded(i) for i in identifiers}):
        session.execute(
            pg_insert(SupplierDirectoryRow)
            .values(identifier=ident, supplier_id=supplier_id, updated_at=at)
            .on_conflict_do_update(index_elements=[SupplierDirectoryRow.identifier],
                                   set_={"supplier_id": supplier_id, "updated_at": at})
        )


def backfill_supplier_id(session: Session, supplier_id: str, keys: list[str],
                         supplier_id_key: str) -> int:
    """Invoices that arrived before the directory knew their supplier get its id now, and the
    `id:` key with it, so a later copy naming the supplier by id is an exact duplicate too."""
    if not keys:
        return 0
    holders = select(SupplierKeyRow.invoice_id).where(
        SupplierKeyRow.supplier_key.in_([_bounded(k) for k in keys]))
    updated = session.execute(
        update(InvoiceRow)
        .where(InvoiceRow.supplier_id.is_(None), InvoiceRow.id.in_(holders))
        .values(supplier_id=supplier_id, updated_at=func.now())
        .returning(InvoiceRow.id, InvoiceRow.number_norm, InvoiceRow.type)
    ).all()
    for row in updated:
        session.execute(
            pg_insert(SupplierKeyRow)
            .values(supplier_key=_bounded(supplier_id_key), number_norm=_bounded(row.number_norm),
                    type=row.type, invoice_id=row.id)
            .on_conflict_do_nothing()
        )
    return len(updated)
