"""Commands and event handlers of the invoices service: one unit of work each.

`receive_invoice` runs inside the caller's transaction (the API opens it): validation, supplier
resolution, duplicate checks, the invoice row and its `invoice.received` outbox row commit
together. The event handlers project matching's decisions onto the invoice status and learn
supplier identifiers from issued purchase orders.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Row
from sqlalchemy.orm import Session

from services.invoices import store
from services.invoices.domain import (
    HANDOVER,
    INVOICE,
    RECEIVED,
    SUSPECTED_DUPLICATE,
    Invoice,
    Issue,
    Supplier,
    directory_identifiers,
    id_key,
    normalise_number,
    status_after,
    supplier_keys,
    suspected_duplicate_of,
)
from services.invoices.validation import validate
from shared.contracts import matching as m
from shared.contracts.invoices import InvoiceReceived
from shared.contracts.requisitions import PurchaseOrderIssued
from shared.envelope import Envelope
from shared.outbox import Outbox

log = logging.getLogger(__name__)


class InvalidInvoice(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(f"{len(issues)} validation error(s)")
        self.issues = issues


class DuplicateInvoice(Exception):
    def __init__(self, existing_id: str) -> None:
        super().__init__(f"duplicate of {existing_id}")
        self.existing_id = existing_id


@dataclass(frozen=True)
class Received:
    id: str
    status: str
    flags: list[str]
    duplicate_of: str | None
    supplier_id: str | None


def receive_invoice(session: Session, outbox: Outbox, inv: Invoice, *, content_type: str,
                    original: bytes, now: datetime | None = None) -> Received:
    """Validate, de-duplicate and store one invoice, writing `invoice.received` to the outbox.

    Raises `InvalidInvoice` (every issue of the document) or `DuplicateInvoice`.
    """
    issues = validate(inv)
    if issues:
        raise InvalidInvoice(issues)
    now = now or datetime.now(UTC)
    if not inv.supplier.id:
        inv.supplier.id = store.resolve_supplier(session, directory_identifiers(inv.supplier))
    keys = supplier_keys(inv.supplier)
    number_norm = normalise_number(inv.number)
    # An exact duplicate is found when its keys are inserted (the unique constraint decides,
    # also between concurrent requests); no separate look-up before.
    flags = list(inv.flags)
    suspect = suspected_duplicate_of(
        number_norm, inv.issue_date,
        store.suspect_candidates(session, keys, inv.type, inv.currency, inv.totals.gross,
                                 inv.issue_date))
    if suspect:
        flags.append(SUSPECTED_DUPLICATE)

    invoice_id = str(uuid.uuid4())
    document = inv.to_payload()
    # A credit note names the invoice it corrects by number; with the same supplier, that is
    # the invoice here whose normalised number it is (matching reduces what it invoiced).
    document["preceding_invoice_id"] = (
        store.find_invoice_id(session, keys, normalise_number(inv.preceding_invoice), INVOICE)
        if inv.preceding_invoice else None)
    row = store.InvoiceRow(
        id=invoice_id, source_format=inv.source_format, type=inv.type,
        invoice_number=inv.number, number_norm=number_norm, supplier_id=inv.supplier.id,
        supplier_name=inv.supplier.name, issue_date=inv.issue_date, currency=inv.currency,
        gross=inv.totals.gross, payable=inv.totals.payable, order_reference=inv.order_reference,
        status=RECEIVED, flags=flags, duplicate_of=suspect, document=document, match=None,
        received_at=now, updated_at=now,
    )
    try:
        store.add_invoice(session, row, keys, content_type, original)
    except store.KeyTaken as taken:
        raise DuplicateInvoice(taken.invoice_id) from taken
    event = InvoiceReceived.model_validate({
        **document,
        "invoice_id": invoice_id,
        "source_format": inv.source_format,
        "flags": flags,
        "duplicate_of": suspect,
        "received_at": now,
    })
    # The invoice id is the correlation id of the flow that starts here, with or without an
    # order reference: matching's events about it inherit it (see services/invoices/README.md).
    outbox.add(session, event, correlation_id=invoice_id)
    return Received(id=invoice_id, status=RECEIVED, flags=flags, duplicate_of=suspect,
                    supplier_id=inv.supplier.id)


# --- matching's events → status ----------------------------------------------------------------

DECISIONS = frozenset({"matched", "awaiting_receipt", "exception_raised"})


def _project(session: Session, envelope: Envelope, invoice_id: str, event_name: str,
             match: dict, action: str | None = None) -> None:
    row = store.lock_status(session, invoice_id)
    if row is None:
        log.warning("%s for unknown invoice %s ignored", envelope.type, invoice_id)
        return
    new_status = status_after(row.status, event_name, action)
    if new_status is None:
        log.info("%s leaves invoice %s in %s", envelope.type, invoice_id, row.status)
    store.record_status(session, row, new_status, match or None, envelope.type, envelope.id,
                        datetime.now(UTC), new_decision=event_name in DECISIONS)


def on_matched(session: Session, event: m.InvoiceMatched, envelope: Envelope) -> None:
    _project(session, envelope, event.invoice_id, "matched", {
        "outcome": "matched", "match_id": event.match_id, "po_number": event.po_number,
        "policy_version": event.policy_version, "decided_at": event.decided_at.isoformat(),
        "reasons": []})


def on_awaiting_receipt(session: Session, event: m.InvoiceAwaitingReceipt,
                        envelope: Envelope) -> None:
    _project(session, envelope, event.invoice_id, "awaiting_receipt", {
        "outcome": "awaiting_receipt", "match_id": event.match_id, "po_number": event.po_number,
        "policy_version": event.policy_version, "decided_at": event.decided_at.isoformat(),
        "lines_awaiting_receipt": list(event.lines), "wait_until": event.wait_until.isoformat(),
        "reasons": []})


def on_exception_raised(session: Session, event: m.InvoiceExceptionRaised,
                        envelope: Envelope) -> None:
    _project(session, envelope, event.invoice_id, "exception_raised", {
        "outcome": "exception", "match_id": event.match_id, "po_number": event.po_number,
        "exception_id": event.exception_id, "reasons": list(event.reasons),
        "decided_at": event.raised_at.isoformat()})


def on_exception_resolved(session: Session, event: m.InvoiceExceptionResolved,
                          envelope: Envelope) -> None:
    _project(session, envelope, event.invoice_id, "exception_resolved", {
        "resolution": {"exception_id": event.exception_id, "action": event.action,
                       "reason_code": event.reason_code, "by": event.resolved_by,
                       "at": event.resolved_at.isoformat()}}, action=event.action)


def on_cleared(session: Session, event: m.InvoiceClearedForPayment, envelope: Envelope) -> None:
    _project(session, envelope, event.invoice_id, "cleared_for_payment", {
        "cleared": {"amount": str(event.amount), "currency": event.currency,
                    "touchless": event.touchless, "by": event.cleared_by,
                    "accepted_variance": (None if event.accepted_variance is None
                                          else str(event.accepted_variance)),
                    "at": event.cleared_at.isoformat()}})


def on_rejected(session: Session, event: m.InvoiceRejected, envelope: Envelope) -> None:
    _project(session, envelope, event.invoice_id, "rejected", {
        "rejection": {"reason_code": event.reason_code, "comment": event.comment,
                      "by": event.rejected_by, "at": event.rejected_at.isoformat()}})


def on_outbox_published(session: Session, rows: Sequence[Row]) -> None:
    """The broker acknowledged our `invoice.received` events: matching has those invoices now
    (`received` → `matching`, see `status_after`). One statement per relay batch, in the relay's
    transaction; a decision that overtook the handover is kept."""
    published = [(r.message_key, r.event_id) for r in rows if r.event_type == InvoiceReceived.ce_type]
    if published:
        store.move_status(session, published, *HANDOVER, InvoiceReceived.ce_type, datetime.now(UTC))


MATCHING_HANDLERS = {
    m.InvoiceMatched.ce_type: on_matched,
    m.InvoiceAwaitingReceipt.ce_type: on_awaiting_receipt,
    m.InvoiceExceptionRaised.ce_type: on_exception_raised,
    m.InvoiceExceptionResolved.ce_type: on_exception_resolved,
    m.InvoiceClearedForPayment.ce_type: on_cleared,
    m.InvoiceRejected.ce_type: on_rejected,
}


# --- purchase orders → supplier directory -------------------------------------------------------

def on_purchase_order_issued(session: Session, event: PurchaseOrderIssued,
                             envelope: Envelope) -> None:
    """Learn the supplier's identifiers, so an invoice naming its supplier only by VAT id,
    PEPPOL id or another party id is tied to the supplier id (duplicates, filters, matching)."""
    ids = event.supplier_identifiers
    supplier = Supplier(id=event.supplier_id, vat_id=ids.vat_id, peppol_id=ids.peppol_id,
                        identifiers=list(ids.identifiers), name=ids.name)
    identifiers = directory_identifiers(supplier)
    now = datetime.now(UTC)
    store.remember_supplier(session, event.supplier_id, identifiers, now)
    store.backfill_supplier_id(session, event.supplier_id, identifiers, id_key(event.supplier_id))
