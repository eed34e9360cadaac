"""Events produced by the invoices service (topic `p2p.invoices`, keyed by invoice id)."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared import topics
from shared.contracts.base import Contract, DecimalStr


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class InvoiceSupplier(_Part):
    id: str | None = None
    vat_id: str | None = None
    peppol_id: str | None = None  # scheme:value
    identifiers: list[str] = Field(default_factory=list)  # other party ids, as scheme:value
    name: str | None = None


class InvoiceLine(_Part):
    line_no: str
    description: str
    quantity: DecimalStr
    uom: str = "EA"
    unit_price: DecimalStr
    net_amount: DecimalStr
    po_line_no: str | None = None
    tax_category: str | None = None
    tax_rate: DecimalStr | None = None


class AllowanceCharge(_Part):
    charge: bool  # False = allowance (reduces), True = charge (adds)
    amount: DecimalStr
    reason: str | None = None
    tax_category: str | None = None
    tax_rate: DecimalStr | None = None


class InvoiceTotals(_Part):
    net: DecimalStr  # sum of line net amounts ± document allowances/charges (tax exclusive)
    tax: DecimalStr
    gross: DecimalStr  # tax inclusive
    payable: DecimalStr
    line_total: DecimalStr | None = None
    allowances: DecimalStr | None = None
    charges: DecimalStr | None = None
    prepaid: DecimalStr | None = None
    rounding: DecimalStr | None = None


class InvoiceReceived(Contract):
    ce_type: ClassVar[str] = "p2p.invoice.received.v1"
    topic: ClassVar[str] = topics.INVOICES
    key_field: ClassVar[str] = "invoice_id"

    invoice_id: str
    source_format: Literal["json", "ubl", "cii", "facturx", "csv"]
    type: Literal["invoice", "credit_note"]
    invoice_number: str
    issue_date: date
    due_date: date | None = None
    currency: str
    supplier: InvoiceSupplier
    order_reference: str | None = None  # the PO number
    preceding_invoice: str | None = None  # invoice number a credit note corrects
    preceding_invoice_id: str | None = None  # its id here, when known
    lines: list[InvoiceLine]
    allowances_charges: list[AllowanceCharge] = Field(default_factory=list)
    totals: InvoiceTotals
    flags: list[str] = Field(default_factory=list)  # e.g. suspected_duplicate
    duplicate_of: str | None = None
    received_at: datetime


EVENTS = (InvoiceReceived,)
