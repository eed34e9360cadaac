"""Validation of what callers send: requisition and supplier drafts. Pure: no I/O.

Each problem is one `FieldError(path, rule, message)`, so the API can name every bad field at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from services.requisitions.codes import CURRENCY_MINOR_UNITS, UNITS_OF_MEASURE

MAX_LINES = 500
DEFAULT_UOM = "EA"


@dataclass(frozen=True)
class FieldError:
    path: str
    rule: str
    message: str


_SUPPLIER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_VAT_ID = re.compile(r"^[A-Z]{2}[0-9A-Z+*.\-]{2,18}$")
# PEPPOL participant id: EAS scheme (4 digits, or a 2-letter code such as EM) ':' value.
_PEPPOL_ID = re.compile(r"^(?:[0-9]{4}|[A-Z]{2}):[^\s:][^\s]{0,99}$")


@dataclass(frozen=True)
class LineDraft:
    description: str
    quantity: Decimal
    unit_price: Decimal
    supplier_id: str
    category: str | None = None
    uom: str = DEFAULT_UOM
    receipt_required: bool = True


@dataclass(frozen=True)
class RequisitionDraft:
    title: str
    cost_center: str
    currency: str
    lines: list[LineDraft]
    needed_by: date | None = None
    justification: str | None = None


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def validate_draft(draft: RequisitionDraft, known_suppliers: Iterable[str]) -> list[FieldError]:
    """Every content problem of a requisition, each naming its field."""
    errors: list[FieldError] = []
    known = set(known_suppliers)
    if _blank(draft.title):
        errors.append(FieldError("title", "required", "title must not be blank"))
    if _blank(draft.cost_center):
        errors.append(FieldError("cost_center", "required", "cost_center must not be blank"))
    if draft.currency not in CURRENCY_MINOR_UNITS:
        errors.append(FieldError("currency", "iso4217",
                                 f"'{draft.currency}' is not an ISO 4217 currency code"))
    if not draft.lines:
        errors.append(FieldError("lines", "min_items", "a requisition needs at least one line"))
    if len(draft.lines) > MAX_LINES:
        errors.append(FieldError("lines", "max_items", f"at most {MAX_LINES} lines"))
    for i, line in enumerate(draft.lines):
        p = f"lines.{i}"
        if _blank(line.description):
            errors.append(FieldError(f"{p}.description", "required",
                                     "description must not be blank"))
        if not line.quantity.is_finite() or line.quantity <= 0:
            errors.append(FieldError(f"{p}.quantity", "positive",
                                     "quantity must be greater than 0"))
        if not line.unit_price.is_finite() or line.unit_price < 0:
            errors.append(FieldError(f"{p}.unit_price", "non_negative",
                                     "unit_price must not be negative"))
        if line.uom not in UNITS_OF_MEASURE:
            errors.append(FieldError(f"{p}.uom", "unece_rec20",
                                     f"'{line.uom}' is not an accepted UN/ECE Rec 20 unit code"))
        if line.supplier_id not in known:
            errors.append(FieldError(f"{p}.supplier_id", "unknown_supplier",
                                     f"supplier '{line.supplier_id}' does not exist"))
    return errors


@dataclass(frozen=True)
class SupplierDraft:
    id: str
    name: str
    vat_id: str | None = None
    peppol_id: str | None = None
    identifiers: tuple[str, ...] = ()
    currency: str | None = None


def normalise_supplier(draft: SupplierDraft) -> SupplierDraft:
    """Canonical form: VAT id upper-case without spaces, identifiers trimmed and de-duplicated."""
    vat = draft.vat_id.replace(" ", "").upper() if draft.vat_id else None
    idents = tuple(dict.fromkeys(i.strip() for i in draft.identifiers if i and i.strip()))
    return replace(draft, id=draft.id.strip(), name=draft.name.strip(), vat_id=vat or None,
                   peppol_id=draft.peppol_id.strip() if draft.peppol_id else None,
                   identifiers=idents)


def validate_supplier(draft: SupplierDraft) -> list[FieldError]:
    errors: list[FieldError] = []
    if not _SUPPLIER_ID.match(draft.id):
        errors.append(FieldError("id", "pattern",
                                 "id: 1-64 letters, digits, '.', '_' or '-', starting "
                                 "alphanumeric"))
    if _blank(draft.name):
        errors.append(FieldError("name", "required", "name must not be blank"))
    if draft.vat_id is not None and not _VAT_ID.match(draft.vat_id):
        errors.append(FieldError("vat_id", "pattern",
                                 "vat_id: a 2-letter country prefix followed by 2-18 characters"))
    if draft.peppol_id is not None and not _PEPPOL_ID.match(draft.peppol_id):
        errors.append(FieldError("peppol_id", "scheme_value",
                                 "peppol_id must be 'scheme:value' with a 4-digit (or 2-letter) "
                                 "EAS scheme, e.g. 0088:9482348239847239874"))
    for i, ident in enumerate(draft.identifiers):
        if len(ident) > 200 or any(c.isspace() for c in ident):
            errors.append(FieldError(f"identifiers.{i}", "pattern",
                                     "an identifier is at most 200 characters without spaces"))
    if draft.currency is not None and draft.currency not in CURRENCY_MINOR_UNITS:
        errors.append(FieldError("currency", "iso4217",
                                 f"'{draft.currency}' is not an ISO 4217 currency code"))
    return errors
