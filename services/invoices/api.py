"""HTTP routes of the invoices service: parse, authorise, call a handler, shape the response."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from services.invoices import store
from services.invoices.domain import STATUSES, Issue
from services.invoices.handlers import DuplicateInvoice, InvalidInvoice, Received, receive_invoice
from services.invoices.metrics import INVOICE_DUPLICATES, INVOICES_RECEIVED, INVOICES_REJECTED
from services.invoices.parsers import (
    CSV_TYPES,
    Malformed,
    NotAnInvoice,
    SchemaInvalid,
    TooLarge,
    UnsupportedType,
    media_type,
    parse_document,
)
from services.invoices.parsers.csv_batch import CsvColumnsMissing, parse_csv_batch
from services.invoices.parsers.csv_batch import __doc__ as CSV_DOC
from services.invoices.parsers.native import NativeInvoice
from shared.auth import require_roles
from shared.db import one_snapshot
from shared.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    field_error,
)
from shared.service import RuntimeDep, ServiceRuntime

router = APIRouter(tags=["invoices"])

SUBMITTERS = ("integration", "ap_clerk")
READERS = ("ap_clerk", "integration", "auditor", "admin")

_INTAKE_DOC = """Submit one invoice or credit note. The `Content-Type` chooses the parser:

* `application/json`: the native schema (`NativeInvoice`; money and quantities as decimal strings);
* `application/xml` / `text/xml`: UBL 2.1 `Invoice` or `CreditNote` (PEPPOL BIS Billing 3.0) or
  UN/CEFACT CII `CrossIndustryInvoice` (EN 16931), chosen by the root element;
* `application/pdf`: Factur-X / ZUGFeRD, the embedded CII XML is read (a PDF without one → 422).

Answers 201 `{id, status, flags, ...}`; 400 malformed body or XML with a DTD / entities;
409 exact duplicate (`existing_id`); 413 too large; 415 other content types; 422 every
validation error of the document with its EN 16931 rule id (`errors[{path, field, rule,
message}]`). A suspected duplicate is accepted with the flag `suspected_duplicate`.
"""


def _problem_errors(issues: list[Issue]) -> list[dict[str, str]]:
    return [i.as_dict() for i in issues]


def _reject(reason: str) -> None:
    INVOICES_REJECTED.labels(reason).inc()


def _parse(body: bytes, content_type: str | None):
    try:
        return parse_document(body, content_type)
    except UnsupportedType as exc:
        _reject(exc.reason)
        raise UnsupportedMediaType(str(exc)) from exc
    except TooLarge as exc:
        _reject(exc.reason)
        raise PayloadTooLarge(str(exc)) from exc
    except Malformed as exc:
        _reject(exc.reason)
        raise BadRequest(str(exc), code=exc.reason.replace("_", "-"),
                         errors=[field_error("/", exc.reason, str(exc))]) from exc
    except NotAnInvoice as exc:
        _reject(exc.reason)
        raise Unprocessable(str(exc), errors=[field_error(exc.path, exc.rule, str(exc))]) from exc
    except SchemaInvalid as exc:
        _reject("validation")
        raise Unprocessable("the invoice does not satisfy the schema",
                            errors=_problem_errors(exc.issues)) from exc


def _store(runtime: ServiceRuntime, inv, content_type: str, body: bytes) -> Received:
    with runtime.db.session() as session, session.begin():
        received = receive_invoice(session, runtime.outbox, inv, content_type=content_type,
                                   original=body)
    INVOICES_RECEIVED.labels(inv.source_format).inc()
    if received.duplicate_of:
        INVOICE_DUPLICATES.labels("suspected").inc()
    return received


def _created_body(received: Received, inv) -> dict[str, Any]:
    return {
        "id": received.id,
        "status": received.status,
        "flags": received.flags,
        "duplicate_of": received.duplicate_of,
        "source_format": inv.source_format,
        "type": inv.type,
        "invoice_number": inv.number,
        "supplier_id": received.supplier_id,
        "order_reference": inv.order_reference,
        "totals": inv.to_payload()["totals"],
    }


def _intake(runtime: ServiceRuntime, body: bytes, content_type: str | None) -> JSONResponse:
    inv = _parse(body, content_type)
    try:
        received = _store(runtime, inv, media_type(content_type), body)
    except InvalidInvoice as exc:
        _reject("validation")
        raise Unprocessable(f"the invoice has {len(exc.issues)} validation error(s)",
                            errors=_problem_errors(exc.issues)) from exc
    except DuplicateInvoice as exc:
        _reject("duplicate")
        INVOICE_DUPLICATES.labels("exact").inc()
        raise Conflict(f"invoice {inv.number[:100]!r} of this supplier was already received",
                       code="duplicate-invoice", existing_id=exc.existing_id) from exc
    return JSONResponse(_created_body(received, inv), status_code=201,
                        headers={"Location": f"/invoices/{received.id}"})


@router.post(
    "/invoices",
    status_code=201,
    summary="Submit an invoice (JSON, UBL, CII or Factur-X PDF)",
    description=_INTAKE_DOC,
    dependencies=[require_roles(*SUBMITTERS)],
    responses={400: {"description": "Malformed body, or XML with a DTD"},
               409: {"description": "Exact duplicate; `existing_id` names the stored invoice"},
               413: {"description": "Body larger than P2P_MAX_BODY_BYTES"},
               415: {"description": "Unsupported Content-Type"},
               422: {"description": "Validation errors, each with path and rule"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/NativeInvoice"}},
        "application/xml": {"schema": {"type": "string", "description":
                                       "UBL 2.1 Invoice/CreditNote or CII CrossIndustryInvoice"}},
        "text/xml": {"schema": {"type": "string"}},
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def post_invoice(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = await request.body()
    return await run_in_threadpool(_intake, runtime, body, request.headers.get("content-type"))


def _batch_item(runtime: ServiceRuntime, item) -> dict[str, Any]:
    result: dict[str, Any] = {"index": item.index, "invoice_number": item.invoice_number,
                              "rows": item.rows}
    if item.issues or item.invoice is None:
        _reject("validation")
        return {**result, "status": 422, "outcome": "invalid",
                "errors": _problem_errors(item.issues)}
    try:
        received = _store(runtime, item.invoice, "text/csv", item.original)
    except InvalidInvoice as exc:
        _reject("validation")
        return {**result, "status": 422, "outcome": "invalid",
                "errors": _problem_errors(exc.issues)}
    except DuplicateInvoice as exc:
        _reject("duplicate")
        INVOICE_DUPLICATES.labels("exact").inc()
        return {**result, "status": 409, "outcome": "duplicate", "existing_id": exc.existing_id}
    return {**result, "status": 201, "outcome": "created", "id": received.id,
            "flags": received.flags, "duplicate_of": received.duplicate_of}


def _batch(runtime: ServiceRuntime, body: bytes, content_type: str | None) -> JSONResponse:
    if media_type(content_type) not in CSV_TYPES:
        _reject("unsupported_media_type")
        raise UnsupportedMediaType(f"Content-Type {media_type(content_type) or '(none)'!r}: "
                                   "/invoices/batch takes text/csv")
    try:
        items = parse_csv_batch(body)
    except Malformed as exc:
        _reject(exc.reason)
        raise BadRequest(str(exc), errors=[field_error("/", exc.reason, str(exc))]) from exc
    except CsvColumnsMissing as exc:
        _reject("validation")
        raise Unprocessable(str(exc), errors=_problem_errors(exc.issues)) from exc
    results = [_batch_item(runtime, item) for item in items]
    summary = {k: sum(1 for r in results if r["outcome"] == k)
               for k in ("created", "duplicate", "invalid")}
    return JSONResponse({"results": results, "summary": summary}, status_code=207)


@router.post(
    "/invoices/batch",
    status_code=207,
    summary="Submit a CSV batch of invoices (one row per invoice line)",
    description="One result per invoice (`created` 201, `duplicate` 409, `invalid` 422); one bad "
                "invoice does not block the others.\n\n" + (CSV_DOC or ""),
    dependencies=[require_roles(*SUBMITTERS)],
    responses={400: {"description": "Not UTF-8 or not well-formed CSV"},
               415: {"description": "Not text/csv"},
               422: {"description": "Required columns missing"}},
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def post_batch(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = await request.body()
    return await run_in_threadpool(_batch, runtime, body, request.headers.get("content-type"))


def _view(row: store.InvoiceRow, history: list[store.StatusChangeRow] | None = None,
          ) -> dict[str, Any]:
    view = {
        **row.document,
        "id": row.id,
        "source_format": row.source_format,
        "status": row.status,
        "flags": list(row.flags),
        "duplicate_of": row.duplicate_of,
        "supplier_id": row.supplier_id,
        "match": row.match,
        "received_at": row.received_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    if history is not None:
        view["history"] = [{"status": h.status, "event_type": h.event_type, "at": h.at.isoformat()}
                           for h in history]
    return view


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s") or not raw[1:].isdigit() or len(raw) > 20:
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("the cursor is not one this service issued",
                         errors=[field_error("cursor", "cursor", "invalid cursor")]) from exc


@router.get("/invoices", summary="List invoices, newest first",
            dependencies=[require_roles(*READERS)])
def list_invoices(
    runtime: RuntimeDep,
    status: Annotated[str | None, Query(description="one of " + ", ".join(STATUSES))] = None,
    supplier_id: str | None = None,
    po_number: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    for name, value in (("supplier_id", supplier_id), ("po_number", po_number)):
        if value is not None and "\x00" in value:
            raise Unprocessable(f"{name} contains a NUL character",
                                errors=[field_error(name, "P2P-TEXT", "NUL is not allowed")])
    if status is not None and status not in STATUSES:
        raise Unprocessable(f"unknown status {status!r}",
                            errors=[field_error("status", "enum", "one of " + ", ".join(STATUSES))])
    before = _decode_cursor(cursor) if cursor else None
    with runtime.db.session() as session:
        rows = store.list_invoices(session, status=status, supplier_id=supplier_id,
                                   po_number=po_number, limit=limit + 1, before_seq=before)
    page = rows[:limit]
    return {"items": [_view(r) for r in page],
            "next_cursor": _encode_cursor(page[-1].seq) if len(rows) > limit else None}


@router.get("/invoices/{invoice_id}", summary="One invoice: normalised, status, flags, match",
            dependencies=[require_roles(*READERS)])
def get_invoice(invoice_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.db.session() as session:
        one_snapshot(session)  # the status shown always agrees with the history beside it
        row = store.get_invoice(session, invoice_id) if "\x00" not in invoice_id else None
        if row is None:
            raise NotFound(f"no invoice {invoice_id}")
        return _view(row, store.status_history(session, invoice_id))


@router.get("/invoices/{invoice_id}/original", summary="The document exactly as received",
            dependencies=[require_roles(*READERS)],
            responses={200: {"content": {"application/xml": {}, "application/pdf": {},
                                         "text/csv": {}, "application/json": {}}}})
def get_original(invoice_id: str, runtime: RuntimeDep) -> Response:
    with runtime.db.session() as session:
        original = store.get_original(session, invoice_id) if "\x00" not in invoice_id else None
        if original is None:
            raise NotFound(f"no invoice {invoice_id}")
        return Response(content=original.body, media_type=original.content_type)


def install_openapi(app: FastAPI) -> None:
    """Adds the native invoice schema (the JSON request body is read raw, so FastAPI does not
    know it) to the platform's OpenAPI document."""
    platform_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = platform_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "NativeInvoice" not in components:
            native = NativeInvoice.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(native.pop("$defs", {}))
            components["NativeInvoice"] = native
        return schema

    app.openapi = openapi
