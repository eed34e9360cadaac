"""Events produced by the requisitions service (topics `p2p.requisitions`, `p2p.purchase-orders`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared import topics
from shared.contracts.base import Contract, DecimalStr


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RequisitionLine(_Part):
    line_no: int
    description: str
    category: str | None = None
    quantity: DecimalStr
    uom: str = "EA"
    unit_price: DecimalStr
    amount: DecimalStr
    supplier_id: str
    receipt_required: bool = True


class RequisitionSubmitted(Contract):
    ce_type: ClassVar[str] = "p2p.requisition.submitted.v1"
    topic: ClassVar[str] = topics.REQUISITIONS
    key_field: ClassVar[str] = "requisition_id"

    requisition_id: str
    # 1 for the first submission, +1 for each resubmission after changes were requested.
    submission: int = 1
    title: str
    requester: str
    requester_name: str | None = None
    cost_center: str
    currency: str
    total: DecimalStr
    needed_by: date | None = None
    justification: str | None = None
    lines: list[RequisitionLine]
    submitted_at: datetime


class RequisitionCancelled(Contract):
    ce_type: ClassVar[str] = "p2p.requisition.cancelled.v1"
    topic: ClassVar[str] = topics.REQUISITIONS
    key_field: ClassVar[str] = "requisition_id"

    requisition_id: str
    cancelled_by: str
    reason: str | None = None
    cancelled_at: datetime


class SupplierIdentifiers(_Part):
    """Every identifier an invoice may carry for this supplier."""

    id: str
    name: str | None = None
    vat_id: str | None = None
    peppol_id: str | None = None  # scheme:value, e.g. 0088:9482348239847239874
    identifiers: list[str] = Field(default_factory=list)


class PurchaseOrderLine(_Part):
    line_no: int
    description: str
    category: str | None = None
    quantity: DecimalStr
    uom: str = "EA"
    unit_price: DecimalStr
    receipt_required: bool = True


class PurchaseOrderIssued(Contract):
    ce_type: ClassVar[str] = "p2p.purchase_order.issued.v1"
    topic: ClassVar[str] = topics.PURCHASE_ORDERS
    key_field: ClassVar[str] = "po_id"

    po_id: str
    po_number: str
    requisition_id: str
    requester: str
    cost_center: str
    supplier_id: str
    supplier_identifiers: SupplierIdentifiers
    currency: str
    total: DecimalStr | None = None
    lines: list[PurchaseOrderLine]
    issued_at: datetime | None = None


class ReceiptLine(_Part):
    line_no: int
    quantity: DecimalStr  # negative = return


class GoodsReceiptRecorded(Contract):
    ce_type: ClassVar[str] = "p2p.goods_receipt.recorded.v1"
    topic: ClassVar[str] = topics.PURCHASE_ORDERS
    key_field: ClassVar[str] = "po_id"  # receipts share the PO's key: never seen before the PO

    receipt_id: str
    po_id: str
    po_number: str
    lines: list[ReceiptLine]
    received_at: datetime
    recorded_by: str | None = None
    note: str | None = None


class PurchaseOrderClosed(Contract):
    ce_type: ClassVar[str] = "p2p.purchase_order.closed.v1"
    topic: ClassVar[str] = topics.PURCHASE_ORDERS
    key_field: ClassVar[str] = "po_id"

    po_id: str
    po_number: str
    reason: str  # received | cancelled
    closed_at: datetime


EVENTS = (
    RequisitionSubmitted,
    RequisitionCancelled,
    PurchaseOrderIssued,
    GoodsReceiptRecorded,
    PurchaseOrderClosed,
)
