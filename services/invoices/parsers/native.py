"""The native JSON invoice (§4.3): its pydantic schema and its conversion to the normalised model."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from services.invoices.domain import (
    AllowanceCharge,
    Invoice,
    Issue,
    Line,
    Supplier,
    Totals,
)
from services.invoices.parsers.common import Malformed


def _no_float(value: Any) -> Any:
    if isinstance(value, (bool, float)):
        raise ValueError("send amounts and quantities as decimal strings, e.g. \"12.50\"")  # noqa: TRY004 - pydantic reports ValueError
    return value


def _text_id(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a string or an integer")  # noqa: TRY004 - as above
    return str(value) if isinstance(value, int) else value


Amount = Annotated[Decimal, BeforeValidator(_no_float),
                   Field(max_digits=24, decimal_places=10, allow_inf_nan=False)]
TextId = Annotated[str, BeforeValidator(_text_id), Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(max_length=1000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class NativeSupplier(_Model):
    id: Text | None = None
    vat_id: Text | None = None
    peppol_id: Text | None = Field(None, description="scheme:value, e.g. 0088:7300010000001")
    identifiers: list[Text] = Field(default_factory=list, description="other party ids")
    name: Text | None = None


class NativeLine(_Model):
    line_no: TextId
    description: Text
    quantity: Amount
    uom: Text | None = Field(None, description="UN/ECE rec. 20 unit code; default EA")
    unit_price: Amount
    net_amount: Amount
    po_line_no: TextId | None = None
    tax_category: Text | None = None
    tax_rate: Amount | None = None


class NativeAllowanceCharge(_Model):
    charge: bool = Field(description="false = allowance (reduces the net), true = charge")
    amount: Amount
    reason: Text | None = None


class NativeTotals(_Model):
    net: Amount = Field(description="Σ line net − allowances + charges (tax exclusive)")
    tax: Amount
    gross: Amount = Field(description="net + tax")
    payable: Amount = Field(description="gross − prepaid")
    prepaid: Amount | None = None


class NativeInvoice(_Model):
    """An invoice in the native JSON shape of §4.3; money and quantities are decimal strings."""

    type: Literal["invoice", "credit_note"]
    invoice_number: Annotated[str, Field(min_length=1, max_length=100)]
    issue_date: date
    due_date: date | None = None
    currency: Annotated[str, Field(min_length=1, max_length=10)]
    supplier: NativeSupplier
    order_reference: Text | None = None
    preceding_invoice: Text | None = None
    lines: list[NativeLine] = Field(max_length=10000)
    allowances_charges: list[NativeAllowanceCharge] = Field(default_factory=list)
    totals: NativeTotals


# Which EN 16931 rule a missing native field breaks.
REQUIRED_RULES = {
    "type": "BR-4",
    "invoice_number": "BR-2",
    "issue_date": "BR-3",
    "currency": "BR-5",
    "lines": "BR-16",
    "lines.line_no": "BR-21",
    "lines.quantity": "BR-22",
    "lines.net_amount": "BR-24",
    "lines.description": "BR-25",
    "lines.unit_price": "BR-26",
    "totals.net": "BR-13",
    "totals.gross": "BR-14",
    "totals.payable": "BR-15",
    "allowances_charges.amount": "BR-31",
}


def _rule_for(path_parts: tuple[Any, ...], error_type: str) -> str:
    generic = ".".join(str(p) for p in path_parts if not isinstance(p, int))
    if error_type == "missing" and generic in REQUIRED_RULES:
        return REQUIRED_RULES[generic]
    if error_type.startswith("date") :
        return "P2P-FORMAT-DATE"
    if error_type.startswith("decimal") or generic.endswith(("quantity", "price", "amount", "net",
                                                             "tax", "gross", "payable", "rate",
                                                             "prepaid")):
        return "P2P-FORMAT-DECIMAL"
    if generic == "type":
        return "BR-4"
    return f"P2P-SCHEMA-{error_type}"


def schema_issues(exc: ValidationError, path_of=None) -> list[Issue]:
    """Pydantic errors as issues with rule ids; `path_of` maps a field path to a source path."""
    issues = []
    for e in exc.errors(include_url=False):
        loc = tuple(e.get("loc", ()))
        field = ".".join(str(p) for p in loc) or "$"
        issues.append(Issue(field, _rule_for(loc, e.get("type", "invalid")), e.get("msg", ""),
                            path_of(field) if path_of else None))
    return issues


class SchemaInvalid(ValueError):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("the document does not satisfy the schema")
        self.issues = issues


def parse_native_json(data: bytes) -> Invoice:
    try:
        model = NativeInvoice.model_validate_json(data)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise Malformed("the body is not valid JSON") from exc
        raise SchemaInvalid(schema_issues(exc)) from exc
    return from_native(model, "json")


def from_native(model: NativeInvoice, source_format: str,
                source_paths: dict[str, str] | None = None) -> Invoice:
    s = model.supplier
    return Invoice(
        source_format=source_format,
        type=model.type,
        number=model.invoice_number,
        issue_date=model.issue_date,
        due_date=model.due_date,
        currency=model.currency,
        supplier=Supplier(id=s.id, vat_id=s.vat_id, peppol_id=s.peppol_id,
                          identifiers=list(s.identifiers), name=s.name),
        order_reference=model.order_reference,
        preceding_invoice=model.preceding_invoice,
        lines=[Line(line_no=ln.line_no, description=ln.description, quantity=ln.quantity,
                    uom=ln.uom, unit_price=ln.unit_price, net_amount=ln.net_amount,
                    po_line_no=ln.po_line_no, tax_category=ln.tax_category,
                    tax_rate=ln.tax_rate) for ln in model.lines],
        allowances_charges=[AllowanceCharge(charge=ac.charge, amount=ac.amount, reason=ac.reason)
                            for ac in model.allowances_charges],
        totals=Totals(net=model.totals.net, tax=model.totals.tax, gross=model.totals.gross,
                      payable=model.totals.payable, prepaid=model.totals.prepaid),
        source_paths=dict(source_paths or {}),
    )
