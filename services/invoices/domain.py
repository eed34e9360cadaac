"""Pure rules of invoice intake: the normalised invoice, duplicates, the status projection.

Every format (native JSON, UBL, CII, Factur-X, CSV) is parsed into the same `Invoice`; the rules
that check it live in `validation.py`. Nothing here does I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

INVOICE, CREDIT_NOTE = "invoice", "credit_note"
FORMATS = ("json", "ubl", "cii", "facturx", "csv")
# UNTDID 1001 codes that mean "credit note" (EN 16931 / PEPPOL BIS 3.0 credit note codes).
CREDIT_NOTE_CODES = frozenset({"381", "396", "81", "83", "532"})

SUSPECTED_DUPLICATE = "suspected_duplicate"
CORRECTIVE_INVOICE = "corrective_invoice"  # a UBL Invoice with a negative total
DUPLICATE_WINDOW_DAYS = 7
SIMILARITY_THRESHOLD = 80.0  # rapidfuzz ratio (0..100) of the normalised numbers

CENT = Decimal("0.01")
UNIT_PRICE_PLACES = Decimal("0.000001")


def rounded(value: Decimal, places: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """`value` rounded to `places`; unchanged when that would exceed the decimal precision
    (absurdly large amounts are refused elsewhere; rounding must not crash on them)."""
    try:
        return value.quantize(places, rounding)
    except InvalidOperation:
        return value


def unit_price(price: Decimal, base_quantity: Decimal) -> Decimal:
    """Net price per one unit, 6 decimals when the division is inexact."""
    unit = price / base_quantity
    six = rounded(unit, UNIT_PRICE_PLACES)
    return unit if unit == six else six


@lru_cache
def code_lists() -> dict[str, frozenset[str]]:
    """ISO 4217 currencies, UN/ECE rec. 20/21 units, UNTDID 1001/5305 codes (see the file)."""
    raw = json.loads((Path(__file__).parent / "codelists.json").read_text())
    return {k: frozenset(v) for k, v in raw.items() if isinstance(v, list)}


@dataclass(frozen=True)
class Issue:
    """One validation error: where (`path` in the source, `field` in the normalised model)."""

    field: str
    rule: str
    message: str
    path: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path or self.field, "field": self.field, "rule": self.rule,
                "message": self.message}


@dataclass
class Supplier:
    id: str | None = None
    vat_id: str | None = None
    peppol_id: str | None = None  # scheme:value
    identifiers: list[str] = field(default_factory=list)  # other party ids (scheme:value)
    name: str | None = None


@dataclass
class Line:
    line_no: str | None = None
    description: str | None = None
    quantity: Decimal | None = None
    uom: str | None = None
    unit_price: Decimal | None = None  # net price per ONE unit (price / base quantity)
    net_amount: Decimal | None = None
    po_line_no: str | None = None
    tax_category: str | None = None
    tax_rate: Decimal | None = None
    allowances: Decimal = Decimal(0)  # line-level allowances (reduce the net amount)
    charges: Decimal = Decimal(0)  # line-level charges (add to it)
    # As stated (UBL PriceAmount / BaseQuantity, CII ChargeAmount / BasisQuantity): the line
    # arithmetic uses them unrounded, `unit_price` is their quotient rounded for display.
    price_amount: Decimal | None = None
    base_quantity: Decimal | None = None


@dataclass
class AllowanceCharge:
    charge: bool  # False = allowance
    amount: Decimal | None
    reason: str | None = None
    tax_category: str | None = None
    tax_rate: Decimal | None = None


@dataclass
class TaxSubtotal:
    category: str | None
    rate: Decimal | None
    taxable: Decimal | None
    amount: Decimal | None


@dataclass
class Totals:
    line_total: Decimal | None = None  # BT-106
    allowances: Decimal | None = None  # BT-107
    charges: Decimal | None = None  # BT-108
    net: Decimal | None = None  # BT-109, tax exclusive
    tax: Decimal | None = None  # BT-110
    gross: Decimal | None = None  # BT-112, tax inclusive
    prepaid: Decimal | None = None  # BT-113
    rounding: Decimal | None = None  # BT-114
    payable: Decimal | None = None  # BT-115


@dataclass
class Invoice:
    """The normalised invoice every parser produces; `None` = absent in the source."""

    source_format: str
    type: str | None = None
    type_code: str | None = None
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    currency: str | None = None
    supplier: Supplier = field(default_factory=Supplier)
    order_reference: str | None = None
    preceding_invoice: str | None = None
    lines: list[Line] = field(default_factory=list)
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)
    tax_subtotals: list[TaxSubtotal] | None = None  # None: the format has no VAT breakdown
    totals: Totals = field(default_factory=Totals)
    specification: str | None = None  # BT-24 (XML formats)
    # Normalised field -> where it is in the source document (XPath for XML, row for CSV).
    source_paths: dict[str, str] = field(default_factory=dict)
    # Issues found while parsing (unreadable numbers, dates...), reported with the rest.
    parse_issues: list[Issue] = field(default_factory=list)
    # Formats following EN 16931 strictly (UBL, CII) must carry the fields it requires.
    strict: bool = False

    def issue(self, field_: str, rule: str, message: str) -> Issue:
        return Issue(field_, rule, message, self.source_paths.get(field_))

    @property
    def flags(self) -> list[str]:
        if self.type == INVOICE and self.totals.payable is not None and self.totals.payable < 0:
            return [CORRECTIVE_INVOICE]
        return []

    def to_payload(self) -> dict[str, Any]:
        """The native JSON shape (plus identifiers, allowances/charges and all totals)."""
        t = self.totals
        allowances = t.allowances if t.allowances is not None else _sum(
            ac.amount for ac in self.allowances_charges if not ac.charge)
        charges = t.charges if t.charges is not None else _sum(
            ac.amount for ac in self.allowances_charges if ac.charge)
        line_total = t.line_total if t.line_total is not None else _sum(
            ln.net_amount for ln in self.lines)
        return {
            "type": self.type,
            "invoice_number": self.number,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "currency": self.currency,
            "supplier": {
                "id": self.supplier.id,
                "vat_id": self.supplier.vat_id,
                "peppol_id": self.supplier.peppol_id,
                "identifiers": list(self.supplier.identifiers),
                "name": self.supplier.name,
            },
            "order_reference": self.order_reference,
            "preceding_invoice": self.preceding_invoice,
            "lines": [
                {
                    "line_no": ln.line_no,
                    "description": ln.description,
                    "quantity": _num(ln.quantity),
                    "uom": ln.uom or "EA",
                    "unit_price": _num(ln.unit_price),
                    "net_amount": _money(ln.net_amount),
                    "po_line_no": ln.po_line_no,
                    "tax_category": ln.tax_category,
                    "tax_rate": _num(ln.tax_rate),
                }
                for ln in self.lines
            ],
            "allowances_charges": [
                {"charge": ac.charge, "amount": _money(ac.amount), "reason": ac.reason,
                 "tax_category": ac.tax_category, "tax_rate": _num(ac.tax_rate)}
                for ac in self.allowances_charges
            ],
            "totals": {
                "net": _money(t.net),
                "tax": _money(t.tax if t.tax is not None else Decimal(0)),
                "gross": _money(t.gross),
                "payable": _money(t.payable),
                "line_total": _money(line_total),
                "allowances": _money(allowances),
                "charges": _money(charges),
                "prepaid": _money(t.prepaid),
                "rounding": _money(t.rounding),
            },
        }


def _sum(values) -> Decimal:
    return sum((v for v in values if v is not None), Decimal(0))


def _money(d: Decimal | None) -> str | None:
    """Amounts with at most 2 decimals are shown with exactly 2; more precise ones unchanged."""
    if d is None:
        return None
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return format(rounded(d, CENT), "f")
    return format(d, "f")


def _num(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")  # plain notation: "100000", not "1E+5"


# --- duplicates -------------------------------------------------------------------------------

_NOT_ALNUM = re.compile(r"[\W_]+", re.UNICODE)
_LEADING_ZEROS = re.compile(r"(?<![0-9])0+(?=[0-9])")


def normalise_number(number: str) -> str:
    """`INV-001`, `inv 001`, `INV001` and `INV1` are one number: case, spaces, punctuation and
    leading zeros (of every digit run) are ignored."""
    compact = _NOT_ALNUM.sub("", number).upper()
    return _LEADING_ZEROS.sub("", compact)


def _compact(value: str) -> str:
    return re.sub(r"\s+", "", value).upper()


def id_key(supplier_id: str) -> str:
    return f"id:{supplier_id.strip()}"


def supplier_keys(supplier: Supplier) -> list[str]:
    """Identity keys of the supplier for duplicate detection.

    Two invoices share a supplier when they share any strong identifier: our supplier id, the
    VAT id or the PEPPOL endpoint. Only when none is present do weaker ones count (other party
    ids, then the name), so an invoice always has at least one key if it has a supplier at all.
    """
    keys: set[str] = set()
    if supplier.id and supplier.id.strip():
        keys.add(id_key(supplier.id))
    if supplier.vat_id and _compact(supplier.vat_id):
        keys.add(f"vat:{_compact(supplier.vat_id)}")
    if supplier.peppol_id and _compact(supplier.peppol_id):
        keys.add(f"peppol:{_compact(supplier.peppol_id)}")
    if not keys:
        keys.update(f"party:{_compact(i)}" for i in supplier.identifiers if i.strip())
    if not keys and supplier.name and supplier.name.strip():
        keys.add("name:" + " ".join(supplier.name.casefold().split()))
    return sorted(keys)


def directory_identifiers(supplier: Supplier) -> list[str]:
    """The keys under which a supplier directory (learnt from POs) may know this supplier."""
    keys = []
    if supplier.vat_id:
        keys.append(f"vat:{_compact(supplier.vat_id)}")
    if supplier.peppol_id:
        keys.append(f"peppol:{_compact(supplier.peppol_id)}")
    keys.extend(f"party:{_compact(i)}" for i in supplier.identifiers if i.strip())
    return keys


def numbers_similar(a: str, b: str) -> bool:
    """Similar invoice numbers (already normalised): near-equal, or one inside the other."""
    if not a or not b:
        return False
    if a in b or b in a:
        return True
    return fuzz.ratio(a, b) >= SIMILARITY_THRESHOLD


@dataclass(frozen=True)
class Candidate:
    """An invoice already stored for the same supplier, same type and same gross amount."""

    id: str
    number_norm: str
    issue_date: date


def suspected_duplicate_of(number_norm: str, issue_date: date,
                           candidates: list[Candidate]) -> str | None:
    """The id of the first stored invoice this one looks like a resubmission of."""
    for c in sorted(candidates, key=lambda c: (abs((c.issue_date - issue_date).days), c.id)):
        if abs((c.issue_date - issue_date).days) <= DUPLICATE_WINDOW_DAYS and numbers_similar(
            number_norm, c.number_norm
        ):
            return c.id
    return None


# --- status projection (driven by matching's events) -------------------------------------------

RECEIVED, MATCHING, MATCHED, AWAITING_RECEIPT, EXCEPTION = (
    "received", "matching", "matched", "awaiting_receipt", "exception")
CLEARED, REJECTED = "cleared_for_payment", "rejected"
STATUSES = (RECEIVED, MATCHING, MATCHED, AWAITING_RECEIPT, EXCEPTION, CLEARED, REJECTED)
TERMINAL = frozenset({CLEARED, REJECTED})
# The one move `published` makes (the relay's hook applies it in bulk, see status_after).
HANDOVER = (RECEIVED, MATCHING)


def status_after(current: str, event: str, action: str | None = None) -> str | None:
    """The status a matching event moves an invoice to, or None when it does not move it.

    `event` is the matching event's name (`matched`, `awaiting_receipt`, `exception_raised`,
    `exception_resolved`, `cleared_for_payment`, `rejected`), or `published`: the invoice's own
    `invoice.received` is on the broker, so matching has it (`received` → `matching` only; a
    decision that overtook it is kept). Terminal statuses never change.
    A resolved exception moves the invoice only when the clerk asked for a rematch; `accept`
    and `reject` are followed by their own cleared/rejected events, and `request_credit_note`
    keeps it in `exception` while the supplier is asked for a credit note.
    """
    if current in TERMINAL:
        return None
    if event == "published":  # our own invoice.received is on the broker
        return HANDOVER[1] if current == HANDOVER[0] else None
    target = {
        "matched": MATCHED,
        "awaiting_receipt": AWAITING_RECEIPT,
        "exception_raised": EXCEPTION,
        "cleared_for_payment": CLEARED,
        "rejected": REJECTED,
    }.get(event)
    if event == "exception_resolved" and action == "rematch":
        target = MATCHING
    return target if target and target != current else None
