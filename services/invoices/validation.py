"""EN 16931 checks on a normalised invoice; every failure is reported, each with its rule id.

Rule ids are the EN 16931 business rules (`BR-…`, `BR-CO-…`, `BR-CL-…`) or the PEPPOL BIS 3.0
rule where EN 16931 has none (`PEPPOL-EN16931-R120`, line net amount); `P2P-…` ids are ours and
are used only where neither standard has a rule. Amounts are compared with a ±0.01 tolerance,
except where the official rules allow more (R120: 0.02; BR-CO-17: under 1.00): every document
valid under PEPPOL BIS 3.0 must pass.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from decimal import ROUND_HALF_UP, Decimal

from services.invoices.domain import (
    CREDIT_NOTE,
    INVOICE,
    Invoice,
    Issue,
    code_lists,
    normalise_number,
    rounded,
    supplier_keys,
)

TOLERANCE = Decimal("0.01")
# PEPPOL-EN16931-R120 allows 0.02 (`u:slack(..., 0.02)` in the PEPPOL schematron); a tighter
# check would refuse valid PEPPOL documents.
LINE_SLACK = Decimal("0.02")
# BR-CO-17 in the CEN schematron: |tax| within (not at) 1.00 of round(taxable × rate / 100, 2).
VAT_CATEGORY_SLACK = Decimal(1)
RATE_DIVISOR = Decimal(100)
MAX_REFERENCE = 200  # PO numbers and supplier ids are looked up by index


def _off(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) > TOLERANCE


def _fmt(d: Decimal) -> str:
    return format(d, "f")


def validate(inv: Invoice) -> list[Issue]:
    """Every problem of the document, parse issues first; an empty list means valid."""
    issues = list(inv.parse_issues)
    add = issues.append
    codes = code_lists()
    for field_, _ in _texts_with_nul(inv):
        add(inv.issue(field_, "P2P-TEXT", "text must not contain NUL characters"))

    # -- header ------------------------------------------------------------------------------
    if inv.strict and not inv.specification:
        add(inv.issue("specification", "BR-1", "the specification identifier (BT-24) is missing"))
    if not inv.number or not inv.number.strip():
        add(inv.issue("invoice_number", "BR-2", "the invoice number (BT-1) is missing"))
    elif not normalise_number(inv.number):
        add(inv.issue("invoice_number", "P2P-NUMBER",
                      f"the invoice number {inv.number!r} has no letters or digits"))
    if inv.issue_date is None and not _has(issues, "issue_date"):
        add(inv.issue("issue_date", "BR-3", "the issue date (BT-2) is missing"))
    if inv.type not in (INVOICE, CREDIT_NOTE):
        add(inv.issue("type", "BR-4", "the invoice type code (BT-3) is missing or unknown"))
    elif inv.type_code is not None and inv.type_code not in codes["document_types"]:
        add(inv.issue("type", "BR-CL-01",
                      f"{inv.type_code!r} is not a UNTDID 1001 invoice type code"))
    if not inv.currency:
        add(inv.issue("currency", "BR-5", "the invoice currency code (BT-5) is missing"))
    elif inv.currency not in codes["currencies"]:
        add(inv.issue("currency", "BR-CL-04", f"{inv.currency!r} is not an ISO 4217 currency code"))

    if inv.order_reference is not None and len(inv.order_reference) > MAX_REFERENCE:
        add(inv.issue("order_reference", "P2P-LENGTH",
                      f"the order reference is longer than {MAX_REFERENCE} characters"))
    s = inv.supplier
    if s.id is not None and len(s.id) > MAX_REFERENCE:
        add(inv.issue("supplier.id", "P2P-LENGTH",
                      f"the supplier id is longer than {MAX_REFERENCE} characters"))
    if inv.strict and not (s.name and s.name.strip()):
        add(inv.issue("supplier.name", "BR-6", "the seller name (BT-27) is missing"))
    if not supplier_keys(s):
        add(inv.issue("supplier", "P2P-SUPPLIER",
                      "the supplier needs an id, a VAT id, a PEPPOL id or a name"))

    # -- lines -------------------------------------------------------------------------------
    if not inv.lines:
        add(inv.issue("lines", "BR-16", "an invoice needs at least one line (BG-25)"))
    for i, ln in enumerate(inv.lines):
        p = f"lines.{i}"
        if not ln.line_no:
            add(inv.issue(f"{p}.line_no", "BR-21", "the line identifier (BT-126) is missing"))
        if ln.quantity is None and not _has(issues, f"{p}.quantity"):
            add(inv.issue(f"{p}.quantity", "BR-22", "the invoiced quantity (BT-129) is missing"))
        if ln.uom is None:
            if inv.strict:
                add(inv.issue(f"{p}.uom", "BR-23", "the unit of measure code (BT-130) is missing"))
        elif ln.uom not in codes["units"]:
            add(inv.issue(f"{p}.uom", "BR-CL-23",
                          f"{ln.uom!r} is not a UN/ECE recommendation 20/21 unit code"))
        if ln.net_amount is None and not _has(issues, f"{p}.net_amount"):
            add(inv.issue(f"{p}.net_amount", "BR-24", "the line net amount (BT-131) is missing"))
        if not (ln.description and ln.description.strip()):
            add(inv.issue(f"{p}.description", "BR-25", "the item name (BT-153) is missing"))
        if ln.unit_price is None and not _has(issues, f"{p}.unit_price"):
            add(inv.issue(f"{p}.unit_price", "BR-26", "the item net price (BT-146) is missing"))
        elif ln.unit_price is not None and ln.unit_price < 0:
            add(inv.issue(f"{p}.unit_price", "BR-27", "the item net price must not be negative"))
        if ln.tax_category is not None and ln.tax_category not in codes["vat_categories"]:
            add(inv.issue(f"{p}.tax_category", "BR-CL-18",
                          f"{ln.tax_category!r} is not a UNTDID 5305 VAT category code"))
        if None not in (ln.quantity, ln.unit_price, ln.net_amount):
            price = ln.unit_price
            if ln.price_amount is not None and ln.base_quantity:
                price = ln.price_amount / ln.base_quantity
            expected = (ln.quantity * price + rounded(ln.charges, TOLERANCE)
                        - rounded(ln.allowances, TOLERANCE))
            if abs(expected - ln.net_amount) > LINE_SLACK:
                add(inv.issue(
                    f"{p}.net_amount", "PEPPOL-EN16931-R120",
                    f"line net amount {_fmt(ln.net_amount)} != quantity × net price "
                    f"+ charges − allowances = {_fmt(expected)}"))

    # -- document allowances and charges, totals ---------------------------------------------
    for i, ac in enumerate(inv.allowances_charges):
        if ac.amount is None and not _has(issues, f"allowances_charges.{i}.amount"):
            rule = "BR-36" if ac.charge else "BR-31"
            add(inv.issue(f"allowances_charges.{i}.amount", rule,
                          "the document level allowance/charge amount is missing"))
    t = inv.totals
    line_sum = sum((ln.net_amount for ln in inv.lines if ln.net_amount is not None), Decimal(0))
    allowance_sum = sum((ac.amount for ac in inv.allowances_charges
                         if not ac.charge and ac.amount is not None), Decimal(0))
    charge_sum = sum((ac.amount for ac in inv.allowances_charges
                      if ac.charge and ac.amount is not None), Decimal(0))
    required = [("net", "BR-13", "the invoice total without VAT (BT-109)"),
                ("gross", "BR-14", "the invoice total with VAT (BT-112)"),
                ("payable", "BR-15", "the amount due for payment (BT-115)")]
    if inv.strict:
        required.insert(0, ("line_total", "BR-12", "the sum of invoice line net amounts (BT-106)"))
    for name, rule, what in required:
        if getattr(t, name) is None and not _has(issues, f"totals.{name}"):
            add(inv.issue(f"totals.{name}", rule, f"{what} is missing"))

    line_total = t.line_total if t.line_total is not None else line_sum
    if t.line_total is not None and _off(line_sum, t.line_total):
        add(inv.issue("totals.line_total", "BR-CO-10",
                      f"sum of line net amounts {_fmt(line_sum)} != {_fmt(t.line_total)}"))
    allowances = _document_sum(inv, issues, "allowances", "BR-CO-11", t.allowances, allowance_sum)
    charges = _document_sum(inv, issues, "charges", "BR-CO-12", t.charges, charge_sum)
    if t.net is not None:
        expected_net = line_total - allowances + charges
        if _off(expected_net, t.net):
            add(inv.issue("totals.net", "BR-CO-13",
                          f"total without VAT {_fmt(t.net)} != line total − allowances + charges "
                          f"= {_fmt(expected_net)}"))
    tax = t.tax if t.tax is not None else Decimal(0)
    if inv.tax_subtotals is not None:
        if inv.strict and not inv.tax_subtotals:
            add(inv.issue("tax_subtotals", "BR-CO-18",
                          "an invoice needs at least one VAT breakdown (BG-23)"))
        subtotal_sum = sum((st.amount for st in inv.tax_subtotals if st.amount is not None),
                           Decimal(0))
        if inv.tax_subtotals and _off(subtotal_sum, tax):
            add(inv.issue("totals.tax", "BR-CO-14",
                          f"total VAT {_fmt(tax)} != sum of VAT category amounts "
                          f"{_fmt(subtotal_sum)}"))
        for i, st in enumerate(inv.tax_subtotals):
            if st.amount is not None and not _vat_category_ok(st.taxable, st.rate, st.amount):
                expected_tax = rounded(abs(st.taxable or 0) * (st.rate or 0) / RATE_DIVISOR,
                                       TOLERANCE)
                add(inv.issue(f"tax_subtotals.{i}.amount", "BR-CO-17",
                              f"VAT amount {_fmt(st.amount)} is not taxable amount × rate "
                              f"= {_fmt(expected_tax)} (± 1.00)"))
    if t.net is not None and t.gross is not None and _off(t.net + tax, t.gross):
        add(inv.issue("totals.gross", "BR-CO-15",
                      f"total with VAT {_fmt(t.gross)} != total without VAT + VAT "
                      f"= {_fmt(t.net + tax)}"))
    if t.gross is not None and t.payable is not None:
        expected_payable = t.gross - (t.prepaid or 0) + (t.rounding or 0)
        if _off(expected_payable, t.payable):
            add(inv.issue("totals.payable", "BR-CO-16",
                          f"amount due {_fmt(t.payable)} != total with VAT − prepaid + rounding "
                          f"= {_fmt(expected_payable)}"))
    return issues


_FIELD = {"number": "invoice_number"}  # Invoice attribute → normalised field name


def _texts_with_nul(value: object, path: str = "") -> list[tuple[str, str]]:
    """(field, text) of every string in the invoice holding a NUL character (storage and
    downstream systems cannot keep one)."""
    if isinstance(value, str):
        return [(path, value)] if "\x00" in value else []
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in _texts_with_nul(v, f"{path}.{i}")]
    if is_dataclass(value):
        return [hit for f in fields(value) if f.name not in ("source_paths", "parse_issues")
                for hit in _texts_with_nul(getattr(value, f.name),
                                           f"{path}.{f.name}" if path else _FIELD.get(f.name,
                                                                                     f.name))]
    return []


def _vat_category_ok(taxable: Decimal | None, rate: Decimal | None, amount: Decimal) -> bool:
    """BR-CO-17 as the CEN schematron states it: a (rounded) zero rate needs a (rounded) zero
    amount; otherwise |amount| is within 1.00 of round(|taxable| × rate / 100, 2)."""
    if rate is None or rate.to_integral_value(ROUND_HALF_UP) == 0:
        return amount.to_integral_value(ROUND_HALF_UP) == 0
    if taxable is None:
        return True  # the missing taxable amount is its own error
    expected = rounded(abs(taxable) * rate / RATE_DIVISOR, TOLERANCE)
    return abs(abs(amount) - expected) < VAT_CATEGORY_SLACK


def _document_sum(inv: Invoice, issues: list[Issue], name: str, rule: str,
                  stated: Decimal | None, computed: Decimal) -> Decimal:
    """BR-CO-11/12: the stated allowance (charge) total equals the sum of the document level
    allowances (charges); UBL and CII must state it when there are any."""
    if stated is None:
        if computed and inv.strict:
            issues.append(inv.issue(f"totals.{name}", rule,
                                    f"document {name} sum to {_fmt(computed)} but their total "
                                    "is missing"))
        return computed
    if _off(computed, stated):
        issues.append(inv.issue(f"totals.{name}", rule,
                                f"document {name} sum to {_fmt(computed)}, the stated total is "
                                f"{_fmt(stated)}"))
    return stated


def _has(issues: list[Issue], field_: str) -> bool:
    """A parse issue already reported for this field (e.g. an unreadable number)."""
    return any(i.field == field_ for i in issues)
