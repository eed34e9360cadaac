"""HTTP routes of the requisitions service: parse, authorise, call a handler, shape the response.

Visibility: requesters see their own requisitions; admins, auditors and approvers see all.
Purchase orders: the requester sees their own; receivers, AP clerks, approvers, admins and
auditors see all.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.requisitions import domain, handlers, store, validation
from services.requisitions.domain import POStatus, Requisition, RequisitionStatus
from services.requisitions.schemas import (
    CancelIn,
    CloseIn,
    POOut,
    POPage,
    ReceiptCreated,
    ReceiptIn,
    RequisitionIn,
    RequisitionOut,
    RequisitionPage,
    RequisitionPatch,
    SupplierIn,
    SupplierOut,
    SupplierPage,
)
from shared.auth import CurrentUser, User, require_roles
from shared.errors import Unprocessable, field_error
from shared.service import RuntimeDep, SessionDep

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=500, description="page size (default 50, max 500)")]
Admin = Annotated[User, require_roles("admin")]
Requester = Annotated[User, require_roles("requester")]


# -- shaping ----------------------------------------------------------------------------------
def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dec(value: Decimal) -> str:
    return str(value)


def _encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(f"v1:{value}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, *, numeric: bool) -> Any:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = raw.partition(":")
        if tag != "v1" or not value or "\x00" in value:
            raise ValueError(cursor)
        if numeric and not 0 < int(value) < 2**63:
            raise ValueError(cursor)
        return int(value) if numeric else value
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise Unprocessable("the cursor is not one this API returned", errors=[
            field_error("cursor", "invalid_cursor", "pass next_cursor from a previous page")
        ]) from exc


def _printable(**params: str | None) -> None:
    bad = [name for name, value in params.items() if value is not None and "\x00" in value]
    if bad:
        raise Unprocessable("query parameters must not contain NUL characters", errors=[
            field_error(name, "no_nul", "must not contain NUL characters") for name in bad])


def supplier_view(row: store.SupplierRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "vat_id": row.vat_id, "peppol_id": row.peppol_id,
            "identifiers": list(row.identifiers or []), "currency": row.currency,
            "created_at": _ts(row.created_at)}


def _line_view(ln: domain.Line) -> dict[str, Any]:
    return {"line_no": ln.line_no, "description": ln.description, "category": ln.category,
            "quantity": _dec(ln.quantity), "uom": ln.uom, "unit_price": _dec(ln.unit_price),
            "amount": _dec(ln.amount), "supplier_id": ln.supplier_id,
            "receipt_required": ln.receipt_required}


def requisition_view(session: SessionDep, req: Requisition, *, po_numbers: list[str],
                     with_history: bool) -> dict[str, Any]:
    created_at, updated_at = store.requisition_times(session, req.id)
    body: dict[str, Any] = {
        "id": req.id, "title": req.title, "status": req.status.value,
        "requester": req.requester, "requester_name": req.requester_name,
        "cost_center": req.cost_center, "currency": req.currency,
        "needed_by": req.needed_by.isoformat() if req.needed_by else None,
        "justification": req.justification, "total": _dec(req.total),
        "submission": req.submission, "lines": [_line_view(ln) for ln in req.lines],
        "approval": req.approval, "purchase_orders": po_numbers,
        "created_at": _ts(created_at), "updated_at": _ts(updated_at),
    }
    if with_history:
        body["history"] = [
            {"at": _ts(h.at), "actor": h.actor, "action": h.action, "from_status": h.from_status,
             "to_status": h.to_status, "detail": h.detail}
            for h in store.history_of(session, req.id)
        ]
    return body


def _full_requisition(session: SessionDep, req: Requisition) -> dict[str, Any]:
    numbers = store.po_numbers_by_requisition(session, [req.id])[req.id]
    return requisition_view(session, req, po_numbers=numbers, with_history=True)


def po_view(session: SessionDep, row: store.PurchaseOrderRow, lines: list[store.POLineRow], *,
            with_receipts: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id, "number": row.number, "requisition_id": row.requisition_id,
        "requester": row.requester, "cost_center": row.cost_center,
        "supplier_id": row.supplier_id, "currency": row.currency, "status": row.status,
        "total": _dec(row.total), "issued_at": _ts(row.issued_at),
        "closed_at": _ts(row.closed_at), "close_reason": row.close_reason,
        "lines": [
            {"line_no": ln.line_no, "requisition_line_no": ln.requisition_line_no,
             "description": ln.description, "category": ln.category, "uom": ln.uom,
             "unit_price": _dec(ln.unit_price), "amount": _dec(ln.amount),
             "receipt_required": ln.receipt_required,
             "ordered_quantity": _dec(ln.quantity),
             "received_quantity": _dec(ln.received_quantity),
             "open_quantity": _dec(max(ln.quantity - ln.received_quantity, Decimal(0)))}
            for ln in lines
        ],
    }
    if with_receipts:
        body["receipts"] = [
            {"id": r.id, "received_at": _ts(r.received_at), "recorded_at": _ts(r.recorded_at),
             "recorded_by": r.recorded_by, "note": r.note,
             "lines": [{"line_no": ln.line_no, "quantity": _dec(ln.quantity)} for ln in rls]}
            for r, rls in store.receipts_of(session, row.id)
        ]
    return body


def _full_po(session: SessionDep, row: store.PurchaseOrderRow) -> dict[str, Any]:
    return po_view(session, row, store.po_lines(session, [row.id])[row.id], with_receipts=True)


# -- suppliers --------------------------------------------------------------------------------
@router.post("/suppliers", status_code=201, response_model=SupplierOut, tags=["suppliers"],
             summary="Create a supplier (admin)",
             responses={409: {"description": "id, VAT id or PEPPOL id already taken"},
                        422: {"description": "invalid field (problem+json naming it)"}})
def create_supplier(body: SupplierIn, session: SessionDep, user: Admin) -> dict[str, Any]:
    draft = validation.SupplierDraft(id=body.id, name=body.name, vat_id=body.vat_id,
                                 peppol_id=body.peppol_id, identifiers=tuple(body.identifiers),
                                 currency=body.currency)
    with session.begin():
        row = handlers.create_supplier(session, user, draft)
        return supplier_view(row)


@router.get("/suppliers", response_model=SupplierPage, tags=["suppliers"],
            summary="List suppliers (by id)")
def list_suppliers(session: SessionDep, _: CurrentUser, limit: Limit = 50,
                   cursor: str | None = None) -> dict[str, Any]:
    after = _decode_cursor(cursor, numeric=False)
    with session.begin():
        rows = store.list_suppliers(session, after=after, limit=limit + 1)
    page = rows[:limit]
    return {"items": [supplier_view(r) for r in page],
            "next_cursor": _encode_cursor(page[-1].id) if len(rows) > limit else None}


@router.get("/suppliers/{supplier_id}", response_model=SupplierOut, tags=["suppliers"],
            summary="Get a supplier")
def get_supplier(supplier_id: str, session: SessionDep, _: CurrentUser) -> dict[str, Any]:
    with session.begin():
        return supplier_view(handlers.get_supplier(session, supplier_id))


# -- requisitions -----------------------------------------------------------------------------
@router.post("/requisitions", status_code=201, response_model=RequisitionOut, tags=["requisitions"],
             summary="Create a requisition (draft)")
def create_requisition(body: RequisitionIn, session: SessionDep,
                       user: Requester) -> dict[str, Any]:
    with session.begin():
        req = handlers.create_requisition(session, user, body.draft())
        return _full_requisition(session, req)


@router.get("/requisitions", response_model=RequisitionPage, tags=["requisitions"],
            summary="List requisitions, newest first (requesters see their own)")
def list_requisitions(session: SessionDep, user: CurrentUser,
                      status: RequisitionStatus | None = None, mine: bool = False,
                      limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    before = _decode_cursor(cursor, numeric=True)
    only_own = mine or not user.has(*handlers.READ_ALL_REQUISITIONS)
    with session.begin():
        rows = store.requisition_page(session, requester=user.id if only_own else None,
                                      status=status.value if status else None,
                                      before_seq=before, limit=limit + 1)
        page = rows[:limit]
        numbers = store.po_numbers_by_requisition(session, [r.id for _, r in page])
        items = [requisition_view(session, req, po_numbers=numbers[req.id], with_history=False)
                 for _, req in page]
    return {"items": items,
            "next_cursor": _encode_cursor(page[-1][0].seq) if len(rows) > limit else None}


@router.get("/requisitions/{req_id}", response_model=RequisitionOut, tags=["requisitions"],
            summary="A requisition with total, approval, purchase orders and history")
def get_requisition(req_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    with session.begin():
        return _full_requisition(session, handlers.read_requisition(session, user, req_id))


@router.patch("/requisitions/{req_id}", response_model=RequisitionOut, tags=["requisitions"],
              summary="Edit a draft or changes_requested requisition (owner); lines replace all")
def update_requisition(req_id: str, body: RequisitionPatch, session: SessionDep,
                       user: CurrentUser) -> dict[str, Any]:
    changes = body.changes()
    with session.begin():
        req = handlers.update_requisition(session, user, req_id, changes)
        return _full_requisition(session, req)


@router.post("/requisitions/{req_id}/submit", status_code=202, response_model=RequisitionOut,
             tags=["requisitions"],
             summary="Submit for approval (owner) → pending_approval")
def submit_requisition(req_id: str, session: SessionDep, runtime: RuntimeDep,
                       user: Requester) -> dict[str, Any]:
    with session.begin():
        req = handlers.submit_requisition(session, runtime.outbox, user, req_id)
        return _full_requisition(session, req)


@router.post("/requisitions/{req_id}/cancel", response_model=RequisitionOut, tags=["requisitions"],
             summary="Cancel before it is ordered (owner)")
def cancel_requisition(req_id: str, session: SessionDep, runtime: RuntimeDep,
                       user: Requester, body: CancelIn | None = None) -> dict[str, Any]:
    with session.begin():
        req = handlers.cancel_requisition(session, runtime.outbox, user, req_id,
                                          body.reason if body else None)
        return _full_requisition(session, req)


# -- purchase orders --------------------------------------------------------------------------
@router.get("/purchase-orders", response_model=POPage, tags=["purchase orders"],
            summary="List purchase orders, newest first (requesters see their own)")
def list_purchase_orders(session: SessionDep, user: CurrentUser,
                         status: POStatus | None = None, supplier_id: str | None = None,
                         requisition_id: str | None = None, mine: bool = False,
                         limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    before = _decode_cursor(cursor, numeric=True)
    _printable(supplier_id=supplier_id, requisition_id=requisition_id)
    only_own = mine or not user.has(*handlers.READ_ALL_POS)
    with session.begin():
        rows = store.po_page(session, requester=user.id if only_own else None,
                             status=status.value if status else None, supplier_id=supplier_id,
                             requisition_id=requisition_id, before_seq=before, limit=limit + 1)
        page = rows[:limit]
        lines = store.po_lines(session, [r.id for r in page])
        items = [po_view(session, r, lines[r.id], with_receipts=False) for r in page]
    return {"items": items,
            "next_cursor": _encode_cursor(page[-1].seq) if len(rows) > limit else None}


@router.get("/purchase-orders/{ref}", response_model=POOut, tags=["purchase orders"],
            summary="A purchase order by id or number, with ordered/received quantities")
def get_purchase_order(ref: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    with session.begin():
        return _full_po(session, handlers.read_po(session, user, ref))


@router.post("/purchase-orders/{ref}/receipts", status_code=201, response_model=ReceiptCreated,
             tags=["purchase orders"],
             summary="Record a goods receipt (negative quantity = return); receiver or requester")
def record_receipt(ref: str, body: ReceiptIn, session: SessionDep, runtime: RuntimeDep,
                   user: CurrentUser) -> dict[str, Any]:
    lines = [domain.ReceiptLineInput(line_no=ln.line_no, quantity=ln.quantity) for ln in body.lines]
    with session.begin():
        result = handlers.record_receipt(session, runtime.outbox, user, ref, lines,
                                         body.received_at, body.note,
                                         runtime.extras["over_receipt_pct"])
        r = result.receipt
        return {"id": r.id, "po_id": result.po.id, "po_number": result.po.number,
                "received_at": _ts(r.received_at), "recorded_at": _ts(r.recorded_at),
                "recorded_by": r.recorded_by, "note": r.note,
                "lines": [{"line_no": ln.line_no, "quantity": _dec(ln.quantity)}
                          for ln in result.lines],
                "purchase_order": _full_po(session, result.po)}


@router.post("/purchase-orders/{ref}/close", response_model=POOut, tags=["purchase orders"],
             summary="Close to further receipts (admin or the requester)")
def close_purchase_order(ref: str, session: SessionDep, runtime: RuntimeDep, user: CurrentUser,
                         body: CloseIn | None = None) -> dict[str, Any]:
    with session.begin():
        row = handlers.close_po(session, runtime.outbox, user, ref, body.reason if body else None)
        return _full_po(session, row)
