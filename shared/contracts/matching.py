"""Events produced by the matching service (topic `p2p.matching`, keyed by invoice id)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from shared import topics
from shared.contracts.base import Contract, DecimalStr


class _MatchingEvent(Contract):
    topic: ClassVar[str] = topics.MATCHING
    key_field: ClassVar[str] = "invoice_id"
    invoice_id: str
    po_number: str | None = None


class InvoiceMatched(_MatchingEvent):
    ce_type: ClassVar[str] = "p2p.invoice.matched.v1"

    match_id: str
    policy_version: int
    decided_at: datetime


class InvoiceAwaitingReceipt(_MatchingEvent):
    ce_type: ClassVar[str] = "p2p.invoice.awaiting_receipt.v1"

    match_id: str
    policy_version: int
    lines: list[str] = Field(default_factory=list)  # invoice line numbers short of receipts
    wait_until: datetime
    decided_at: datetime


class InvoiceExceptionRaised(_MatchingEvent):
    ce_type: ClassVar[str] = "p2p.invoice.exception_raised.v1"

    exception_id: str
    match_id: str | None = None
    reasons: list[str]
    raised_at: datetime


class InvoiceExceptionResolved(_MatchingEvent):
    ce_type: ClassVar[str] = "p2p.invoice.exception_resolved.v1"

    exception_id: str
    action: str  # accept | reject | request_credit_note | rematch
    reason_code: str
    resolved_by: str
    resolved_at: datetime


class InvoiceClearedForPayment(_MatchingEvent):
    ce_type: ClassVar[str] = "p2p.invoice.cleared_for_payment.v1"

    currency: str
    amount: DecimalStr  # payable amount
    touchless: bool
    accepted_variance: DecimalStr | None = None
    cleared_by: str | None = None  # None when touchless
    cleared_at: datetime


class InvoiceRejected(_MatchingEvent):
    ce_type: ClassVar[str] = "p2p.invoice.rejected.v1"

    reason_code: str
    comment: str | None = None
    rejected_by: str
    rejected_at: datetime


EVENTS = (
    InvoiceMatched,
    InvoiceAwaitingReceipt,
    InvoiceExceptionRaised,
    InvoiceExceptionResolved,
    InvoiceClearedForPayment,
    InvoiceRejected,
)
