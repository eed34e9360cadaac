"""Tables of the requisitions service and every query it makes."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    Sequence,
    Text,
    UniqueConstraint,
    delete,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.requisitions import domain, validation
from services.requisitions.domain import (
    HistoryEntry,
    Line,
    POLine,
    POStatus,
    PurchaseOrder,
    Requisition,
    RequisitionStatus,
)

PO_NUMBER_SEQ = Sequence("po_number_seq")


class Base(DeclarativeBase):
    pass


class SupplierRow(Base):
    __tablename__ = "suppliers"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    vat_id: Mapped[str | None] = mapped_column(Text, unique=True)
    peppol_id: Mapped[str | None] = mapped_column(Text, unique=True)
    identifiers: Mapped[list[str]] = mapped_column(JSONB, default=list)
    currency: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)


class RequisitionRow(Base):
    __tablename__ = "requisitions"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    requester: Mapped[str] = mapped_column(Text, index=True)
    requester_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    cost_center: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    needed_by: Mapped[date | None] = mapped_column(Date)
    justification: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, index=True)
    submission: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[Decimal] = mapped_column(Numeric)
    approval: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RequisitionLineRow(Base):
    __tablename__ = "requisition_lines"
    requisition_id: Mapped[str] = mapped_column(
        Text, ForeignKey("requisitions.id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric)
    uom: Mapped[str] = mapped_column(Text)
    unit_price: Mapped[Decimal] = mapped_column(Numeric)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    supplier_id: Mapped[str] = mapped_column(Text, ForeignKey("suppliers.id"))
    receipt_required: Mapped[bool] = mapped_column(Boolean)


class HistoryRow(Base):
    __tablename__ = "requisition_history"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    requisition_id: Mapped[str] = mapped_column(
        Text, ForeignKey("requisitions.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class PurchaseOrderRow(Base):
    __tablename__ = "purchase_orders"
    __table_args__ = (UniqueConstraint("requisition_id", "supplier_id",
                                       name="purchase_orders_one_per_supplier"),)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    number: Mapped[str] = mapped_column(Text, unique=True)
    requisition_id: Mapped[str] = mapped_column(Text, ForeignKey("requisitions.id"))
    requester: Mapped[str] = mapped_column(Text, index=True)
    cost_center: Mapped[str] = mapped_column(Text)
    supplier_id: Mapped[str] = mapped_column(Text, ForeignKey("suppliers.id"), index=True)
    currency: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, index=True)
    total: Mapped[Decimal] = mapped_column(Numeric)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    close_reason: Mapped[str | None] = mapped_column(Text)


class POLineRow(Base):
    __tablename__ = "po_lines"
    po_id: Mapped[str] = mapped_column(
        Text, ForeignKey("purchase_orders.id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    requisition_line_no: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric)
    uom: Mapped[str] = mapped_column(Text)
    unit_price: Mapped[Decimal] = mapped_column(Numeric)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    receipt_required: Mapped[bool] = mapped_column(Boolean)
    received_quantity: Mapped[Decimal] = mapped_column(Numeric, default=Decimal(0))


class ReceiptRow(Base):
    __tablename__ = "receipts"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    po_id: Mapped[str] = mapped_column(Text, ForeignKey("purchase_orders.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class ReceiptLineRow(Base):
    __tablename__ = "receipt_lines"
    receipt_id: Mapped[str] = mapped_column(
        Text, ForeignKey("receipts.id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Numeric)


# -- suppliers --------------------------------------------------------------------------------
def supplier_conflicts(session: Session, draft: validation.SupplierDraft) -> list[str]:
    """Fields of `draft` (id, vat_id, peppol_id) another supplier already holds."""
    taken = []
    if session.get(SupplierRow, draft.id) is not None:
        taken.append("id")
    for name in ("vat_id", "peppol_id"):
        value = getattr(draft, name)
        if value is not None and session.scalar(
                select(SupplierRow.id).where(getattr(SupplierRow, name) == value)) is not None:
            taken.append(name)
    return taken


def add_supplier(session: Session, draft: validation.SupplierDraft, by: str,
                 now: datetime) -> SupplierRow:
    row = SupplierRow(id=draft.id, name=draft.name, vat_id=draft.vat_id, peppol_id=draft.peppol_id,
                      identifiers=list(draft.identifiers), currency=draft.currency,
                      created_at=now, created_by=by)
    session.add(row)
    session.flush()
    return row


def _storable(value: str) -> bool:
    """Ids from URLs: PostgreSQL text cannot hold NUL, so such an id exists nowhere."""
    return "\x00" not in value


def get_supplier(session: Session, supplier_id: str) -> SupplierRow | None:
    return session.get(SupplierRow, supplier_id) if _storable(supplier_id) else None


def list_suppliers(session: Session, *, after: str | None, limit: int) -> list[SupplierRow]:
    q = select(SupplierRow).order_by(SupplierRow.id).limit(limit)
    if after is not None:
        q = q.where(SupplierRow.id > after)
    return list(session.scalars(q))


def existing_supplier_ids(session: Session, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.scalars(select(SupplierRow.id).where(SupplierRow.id.in_(ids))))


# -- requisitions -----------------------------------------------------------------------------
def _to_domain(row: RequisitionRow, lines: list[RequisitionLineRow]) -> Requisition:
    return Requisition(
        id=row.id, requester=row.requester, requester_name=row.requester_name, title=row.title,
        cost_center=row.cost_center, currency=row.currency, needed_by=row.needed_by,
        justification=row.justification, status=RequisitionStatus(row.status),
        submission=row.submission, approval=row.approval,
        lines=[Line(line_no=ln.line_no, description=ln.description, quantity=ln.quantity,
                    unit_price=ln.unit_price, supplier_id=ln.supplier_id, amount=ln.amount,
                    category=ln.category, uom=ln.uom, receipt_required=ln.receipt_required)
               for ln in sorted(lines, key=lambda ln: ln.line_no)],
    )


def _lines_of(session: Session, ids: list[str]) -> dict[str, list[RequisitionLineRow]]:
    out: dict[str, list[RequisitionLineRow]] = {i: [] for i in ids}
    if ids:
        for ln in session.scalars(select(RequisitionLineRow)
                                  .where(RequisitionLineRow.requisition_id.in_(ids))):
            out[ln.requisition_id].append(ln)
    return out


def load_requisition(session: Session, req_id: str, *, lock: bool = False) -> Requisition | None:
    if not _storable(req_id):
        return None
    q = select(RequisitionRow).where(RequisitionRow.id == req_id)
    if lock:
        q = q.with_for_update()
    row = session.scalar(q)
    if row is None:
        return None
    return _to_domain(row, _lines_of(session, [row.id])[row.id])


def requisition_times(session: Session, req_id: str) -> tuple[datetime, datetime]:
    row = session.get(RequisitionRow, req_id)
    return row.created_at, row.updated_at


def save_requisition(session: Session, req: Requisition, now: datetime, *,
                     lines_changed: bool = False) -> None:
    """Insert or update the requisition; replace its lines when they changed; append history."""
    row = session.get(RequisitionRow, req.id)
    values = {"requester": req.requester, "requester_name": req.requester_name,
              "title": req.title, "cost_center": req.cost_center, "currency": req.currency,
              "needed_by": req.needed_by, "justification": req.justification,
              "status": req.status.value, "submission": req.submission, "total": req.total,
              "approval": req.approval, "updated_at": now}
    if row is None:
        session.add(RequisitionRow(id=req.id, created_at=now, **values))
        session.flush()
        lines_changed = True
    else:
        for key, value in values.items():
            setattr(row, key, value)
    if lines_changed:
        session.execute(delete(RequisitionLineRow)
                        .where(RequisitionLineRow.requisition_id == req.id))
        session.add_all([
            RequisitionLineRow(requisition_id=req.id, line_no=ln.line_no,
                               description=ln.description,
                               category=ln.category, quantity=ln.quantity, uom=ln.uom,
                               unit_price=ln.unit_price, amount=ln.amount,
                               supplier_id=ln.supplier_id, receipt_required=ln.receipt_required)
            for ln in req.lines
        ])
    session.add_all([_history_row(req.id, h) for h in req.new_history])
    req.new_history.clear()
    session.flush()


def _history_row(req_id: str, h: HistoryEntry) -> HistoryRow:
    return HistoryRow(requisition_id=req_id, at=h.at, actor=h.actor, action=h.action,
                      from_status=h.from_status, to_status=h.to_status, detail=h.detail)


def history_of(session: Session, req_id: str) -> list[HistoryRow]:
    return list(session.scalars(select(HistoryRow).where(HistoryRow.requisition_id == req_id)
                                .order_by(HistoryRow.id)))


def requisition_page(session: Session, *, requester: str | None, status: str | None,
                     before_seq: int | None,
                     limit: int) -> list[tuple[RequisitionRow, Requisition]]:
    """Newest first; `before_seq` is the cursor (the last seq of the previous page)."""
    q = select(RequisitionRow).order_by(RequisitionRow.seq.desc()).limit(limit)
    if requester is not None:
        q = q.where(RequisitionRow.requester == requester)
    if status is not None:
        q = q.where(RequisitionRow.status == status)
    if before_seq is not None:
        q = q.where(RequisitionRow.seq < before_seq)
    rows = list(session.scalars(q))
    lines = _lines_of(session, [r.id for r in rows])
    return [(r, _to_domain(r, lines[r.id])) for r in rows]


def po_numbers_by_requisition(session: Session, req_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {i: [] for i in req_ids}
    if req_ids:
        for req_id, number in session.execute(
                select(PurchaseOrderRow.requisition_id, PurchaseOrderRow.number)
                .where(PurchaseOrderRow.requisition_id.in_(req_ids))
                .order_by(PurchaseOrderRow.seq)):
            out[req_id].append(number)
    return out


# -- purchase orders --------------------------------------------------------------------------
def next_po_number(session: Session) -> str:
    return f"PO-{session.scalar(PO_NUMBER_SEQ.next_value()):06d}"


def insert_purchase_order(session: Session, *, po_id: str, number: str, req: Requisition,
                          planned: domain.PlannedOrder, now: datetime) -> bool:
    """Insert the PO and its lines; False (and nothing written) when the requisition already
    has a PO for this supplier (unique constraint: a redelivered decision creates nothing)."""
    total = domain.money(sum((ln.amount for _, ln in planned.lines), Decimal(0)), req.currency)
    inserted = session.execute(
        pg_insert(PurchaseOrderRow)
        .values(id=po_id, number=number, requisition_id=req.id, requester=req.requester,
                cost_center=req.cost_center, supplier_id=planned.supplier_id,
                currency=req.currency, status=POStatus.ISSUED.value, total=total, issued_at=now)
        .on_conflict_do_nothing(constraint="purchase_orders_one_per_supplier")
        .returning(PurchaseOrderRow.id)
    ).first()
    if inserted is None:
        return False
    session.add_all([
        POLineRow(po_id=po_id, line_no=n, requisition_line_no=ln.line_no,
                  description=ln.description, category=ln.category, quantity=ln.quantity,
                  uom=ln.uom, unit_price=ln.unit_price, amount=ln.amount,
                  receipt_required=ln.receipt_required, received_quantity=Decimal(0))
        for n, ln in planned.lines
    ])
    session.flush()
    return True


def find_po_row(session: Session, ref: str, *, lock: bool = False) -> PurchaseOrderRow | None:
    """By id or by number (`PO-000001`)."""
    if not _storable(ref):
        return None
    column = PurchaseOrderRow.number if ref.upper().startswith("PO-") else PurchaseOrderRow.id
    value = ref.upper() if column is PurchaseOrderRow.number else ref
    q = select(PurchaseOrderRow).where(column == value)
    if lock:
        q = q.with_for_update()
    return session.scalar(q)


def po_lines(session: Session, po_ids: list[str]) -> dict[str, list[POLineRow]]:
    out: dict[str, list[POLineRow]] = {i: [] for i in po_ids}
    if po_ids:
        for ln in session.scalars(select(POLineRow).where(POLineRow.po_id.in_(po_ids))
                                  .order_by(POLineRow.po_id, POLineRow.line_no)):
            out[ln.po_id].append(ln)
    return out


def po_to_domain(row: PurchaseOrderRow, lines: list[POLineRow]) -> PurchaseOrder:
    return PurchaseOrder(
        id=row.id, number=row.number, requisition_id=row.requisition_id, requester=row.requester,
        status=POStatus(row.status),
        lines=[POLine(line_no=ln.line_no, quantity=ln.quantity, received=ln.received_quantity,
                      receipt_required=ln.receipt_required) for ln in lines])


def pos_of_requisition(session: Session, req_id: str) -> list[PurchaseOrder]:
    rows = list(session.scalars(select(PurchaseOrderRow)
                                .where(PurchaseOrderRow.requisition_id == req_id)
                                .order_by(PurchaseOrderRow.seq)))
    lines = po_lines(session, [r.id for r in rows])
    return [po_to_domain(r, lines[r.id]) for r in rows]


def save_po_progress(session: Session, po: PurchaseOrder, *, closed_at: datetime | None = None,
                     close_reason: str | None = None) -> None:
    values: dict[str, Any] = {"status": po.status.value}
    if closed_at is not None:
        values.update(closed_at=closed_at, close_reason=close_reason)
    session.execute(update(PurchaseOrderRow).where(PurchaseOrderRow.id == po.id).values(**values))
    for ln in po.lines:
        session.execute(update(POLineRow)
                        .where(POLineRow.po_id == po.id, POLineRow.line_no == ln.line_no)
                        .values(received_quantity=ln.received))


def add_receipt(session: Session, *, receipt_id: str, po_id: str, received_at: datetime,
                recorded_at: datetime, recorded_by: str, note: str | None,
                lines: list[domain.ReceiptLineInput]) -> ReceiptRow:
    row = ReceiptRow(id=receipt_id, po_id=po_id, received_at=received_at, recorded_at=recorded_at,
                     recorded_by=recorded_by, note=note)
    session.add(row)
    session.flush()
    session.add_all([ReceiptLineRow(receipt_id=receipt_id, line_no=ln.line_no, quantity=ln.quantity)
                     for ln in lines])
    session.flush()
    return row


def receipts_of(session: Session, po_id: str) -> list[tuple[ReceiptRow, list[ReceiptLineRow]]]:
    rows = list(session.scalars(select(ReceiptRow).where(ReceiptRow.po_id == po_id)
                                .order_by(ReceiptRow.seq)))
    lines: dict[str, list[ReceiptLineRow]] = {r.id: [] for r in rows}
    if rows:
        for ln in session.scalars(select(ReceiptLineRow)
                                  .where(ReceiptLineRow.receipt_id.in_(list(lines)))
                                  .order_by(ReceiptLineRow.line_no)):
            lines[ln.receipt_id].append(ln)
    return [(r, lines[r.id]) for r in rows]


def po_page(session: Session, *, requester: str | None, status: str | None,
            supplier_id: str | None, requisition_id: str | None, before_seq: int | None,
            limit: int) -> list[PurchaseOrderRow]:
    q = select(PurchaseOrderRow).order_by(PurchaseOrderRow.seq.desc()).limit(limit)
    for column, value in ((PurchaseOrderRow.requester, requester),
                          (PurchaseOrderRow.status, status),
                          (PurchaseOrderRow.supplier_id, supplier_id),
                          (PurchaseOrderRow.requisition_id, requisition_id)):
        if value is not None:
            q = q.where(column == value)
    if before_seq is not None:
        q = q.where(PurchaseOrderRow.seq < before_seq)
    return list(session.scalars(q))

