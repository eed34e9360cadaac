"""Request and response bodies of the requisitions API (the OpenAPI document shows them).

Requests are strict (unknown fields → 422) and never carry NUL characters; decimals are accepted
as strings (or JSON numbers) and always answered as strings.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.requisitions import validation
from services.requisitions.domain import POStatus, RequisitionStatus
from shared.errors import Unprocessable, field_error


def _plain(value: Decimal) -> Decimal:
    """`1E+2` → `100`: decimals leave this service in plain notation (responses and events)."""
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


Quantity = Annotated[Decimal, Field(max_digits=18, decimal_places=6,
                                    description="decimal string, e.g. \"10.5\""),
                     AfterValidator(_plain)]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=6,
                                 description="decimal string, e.g. \"1234.50\""),
                  AfterValidator(_plain)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL nor a lone surrogate (not valid UTF-8): refuse them
        # here instead of failing in the database.
        items = value if isinstance(value, list) else [value]
        for x in items:
            if not isinstance(x, str):
                continue
            if "\x00" in x:
                raise ValueError("must not contain NUL characters")
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode text (no lone surrogates)") from None
        return value


class SupplierIn(_In):
    id: str = Field(min_length=1, max_length=64, examples=["SUP-ACME"])
    name: str = Field(min_length=1, max_length=300)
    vat_id: str | None = Field(None, max_length=40, examples=["DE123456789"])
    peppol_id: str | None = Field(None, max_length=120, examples=["0088:9482348239847239874"])
    identifiers: list[str] = Field(default_factory=list, max_length=50)
    currency: str | None = Field(None, max_length=10, examples=["EUR"])


class LineIn(_In):
    description: str = Field(min_length=1, max_length=1000)
    category: str | None = Field(None, max_length=100)
    quantity: Quantity
    uom: str = Field(validation.DEFAULT_UOM, max_length=35,
                     description="UN/ECE Recommendation 20 unit code")
    unit_price: Money
    supplier_id: str = Field(min_length=1, max_length=64)
    receipt_required: bool = Field(True, description="false = services, two-way match")

    def draft(self) -> validation.LineDraft:
        return validation.LineDraft(description=self.description, quantity=self.quantity,
                                unit_price=self.unit_price, supplier_id=self.supplier_id,
                                category=self.category, uom=self.uom,
                                receipt_required=self.receipt_required)


class RequisitionIn(_In):
    title: str = Field(min_length=1, max_length=300)
    cost_center: str = Field(min_length=1, max_length=64)
    currency: str = Field(max_length=10, examples=["EUR"])
    needed_by: date | None = None
    justification: str | None = Field(None, max_length=5000)
    lines: list[LineIn] = Field(max_length=validation.MAX_LINES)

    def draft(self) -> validation.RequisitionDraft:
        return validation.RequisitionDraft(title=self.title, cost_center=self.cost_center,
                                       currency=self.currency, needed_by=self.needed_by,
                                       justification=self.justification,
                                       lines=[ln.draft() for ln in self.lines])


class RequisitionPatch(_In):
    title: str | None = Field(None, min_length=1, max_length=300)
    cost_center: str | None = Field(None, min_length=1, max_length=64)
    currency: str | None = Field(None, max_length=10)
    needed_by: date | None = None
    justification: str | None = Field(None, max_length=5000)
    lines: list[LineIn] | None = Field(None, max_length=validation.MAX_LINES,
                                       description="replaces every line")

    def changes(self) -> dict[str, Any]:
        sent = self.model_fields_set
        nulls = [f for f in ("title", "cost_center", "currency", "lines")
                 if f in sent and getattr(self, f) is None]
        if nulls:
            raise Unprocessable("required fields cannot be set to null", errors=[
                field_error(f, "not_null", f"{f} cannot be null") for f in nulls])
        out: dict[str, Any] = {f: getattr(self, f) for f in sent}
        if "lines" in out:
            out["lines"] = [ln.draft() for ln in self.lines or []]
        return out


class CancelIn(_In):
    reason: str | None = Field(None, max_length=2000)


class ReceiptLineIn(_In):
    line_no: int = Field(ge=1, le=1_000_000)
    quantity: Quantity = Field(description="negative = return")


class ReceiptIn(_In):
    lines: list[ReceiptLineIn] = Field(max_length=validation.MAX_LINES)
    received_at: AwareDatetime | None = None
    note: str | None = Field(None, max_length=2000)


class CloseIn(_In):
    reason: Literal["received", "cancelled"] | None = Field(
        None, description="default: received if anything was received, else cancelled")


# -- responses --------------------------------------------------------------------------------
DecimalText = Annotated[str, Field(description="decimal as a string", examples=["1234.50"])]
Timestamp = Annotated[str, Field(description="RFC 3339 UTC", examples=["2026-11-26T09:30:00Z"])]


class SupplierOut(BaseModel):
    id: str
    name: str
    vat_id: str | None
    peppol_id: str | None
    identifiers: list[str]
    currency: str | None
    created_at: Timestamp


class SupplierPage(BaseModel):
    items: list[SupplierOut]
    next_cursor: str | None


class RequisitionLineOut(BaseModel):
    line_no: int
    description: str
    category: str | None
    quantity: DecimalText
    uom: str
    unit_price: DecimalText
    amount: DecimalText
    supplier_id: str
    receipt_required: bool


class ApprovalOut(BaseModel):
    """The latest approval decision."""

    outcome: Literal["approved", "rejected", "changes_requested"]
    decided_by: list[str]
    decided_at: Timestamp
    comment: str | None = None
    policy_version: int | None = None
    submission: int


class HistoryOut(BaseModel):
    at: Timestamp
    actor: str
    action: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any]


class RequisitionSummary(BaseModel):
    id: str
    title: str
    status: RequisitionStatus
    requester: str
    requester_name: str | None
    cost_center: str
    currency: str
    needed_by: date | None
    justification: str | None
    total: DecimalText
    submission: int = Field(description="0 before the first submit, +1 per submission")
    lines: list[RequisitionLineOut]
    approval: ApprovalOut | None
    purchase_orders: list[str] = Field(description="PO numbers")
    created_at: Timestamp
    updated_at: Timestamp


class RequisitionOut(RequisitionSummary):
    history: list[HistoryOut] = Field(description="every change: who, what, when")


class RequisitionPage(BaseModel):
    items: list[RequisitionSummary]
    next_cursor: str | None


class POLineOut(BaseModel):
    line_no: int
    requisition_line_no: int
    description: str
    category: str | None
    uom: str
    unit_price: DecimalText
    amount: DecimalText
    receipt_required: bool
    ordered_quantity: DecimalText
    received_quantity: DecimalText
    open_quantity: DecimalText


class ReceiptLineOut(BaseModel):
    line_no: int
    quantity: DecimalText = Field(description="negative = return")


class ReceiptOut(BaseModel):
    id: str
    received_at: Timestamp
    recorded_at: Timestamp
    recorded_by: str
    note: str | None
    lines: list[ReceiptLineOut]


class POSummary(BaseModel):
    id: str
    number: str
    requisition_id: str
    requester: str
    cost_center: str
    supplier_id: str
    currency: str
    status: POStatus
    total: DecimalText
    issued_at: Timestamp
    closed_at: Timestamp | None
    close_reason: str | None
    lines: list[POLineOut]


class POOut(POSummary):
    receipts: list[ReceiptOut]


class POPage(BaseModel):
    items: list[POSummary]
    next_cursor: str | None


class ReceiptCreated(ReceiptOut):
    po_id: str
    po_number: str
    purchase_order: POOut = Field(description="the purchase order after this receipt")
