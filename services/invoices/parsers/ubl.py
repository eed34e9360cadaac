"""UBL 2.1 `Invoice` and `CreditNote` as profiled by PEPPOL BIS Billing 3.0 → normalised invoice.

Field mapping (EN 16931 business terms): BT-1 `cbc:ID`, BT-2 `cbc:IssueDate`, BT-3
`cbc:InvoiceTypeCode`/`cbc:CreditNoteTypeCode`, BT-5 `cbc:DocumentCurrencyCode`, BT-9
`cbc:DueDate` (credit notes: `cac:PaymentMeans/cbc:PaymentDueDate`), BT-13
`cac:OrderReference/cbc:ID`, BT-25 `cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID`,
seller `cac:AccountingSupplierParty/cac:Party` (BT-34 `cbc:EndpointID` → PEPPOL id
`schemeID:value`, BT-31 VAT id, BT-29 party ids, BT-30 legal id, BT-27/BT-28 names), lines
(`cac:InvoiceLine` / `cac:CreditNoteLine`: BT-126 id, BT-129/130 quantity and unit, BT-131 net
amount, BT-132 `cac:OrderLineReference/cbc:LineID`, BT-153 item name, BT-146 net price divided
by BT-149 `cbc:BaseQuantity`, BT-151/152 VAT category and rate, line allowances/charges),
document allowances/charges, `cac:TaxTotal` in the document currency, `cac:LegalMonetaryTotal`.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from services.invoices.domain import (
    CREDIT_NOTE,
    CREDIT_NOTE_CODES,
    INVOICE,
    AllowanceCharge,
    Invoice,
    Issue,
    Line,
    TaxSubtotal,
    unit_price,
)
from services.invoices.parsers.common import clean, read_date, read_decimal, scheme_value

CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS = {"cbc": CBC, "cac": CAC}
DATE_RULE = "PEPPOL-EN16931-F001"  # "A date MUST be formatted YYYY-MM-DD."


def _find(el: etree._Element, path: str) -> etree._Element | None:
    return el.find(path, NS)


def _text(el: etree._Element, path: str) -> str | None:
    found = el.find(path, NS)
    return None if found is None else found.text


class _Reader:
    """Reads one document, remembering where each normalised field came from."""

    def __init__(self, root: etree._Element, inv: Invoice) -> None:
        self.root = root
        self.inv = inv
        self.root_path = f"/{etree.QName(root).localname}"

    def at(self, field: str, path: str) -> str:
        self.inv.source_paths[field] = path
        return field

    def dec(self, field: str, el: etree._Element, rel: str, base: str) -> Decimal | None:
        self.at(field, f"{base}/{rel}")
        return read_decimal(self.inv, field, _text(el, rel))


def parse_ubl(root: etree._Element) -> Invoice:
    is_credit = etree.QName(root).namespace == CREDIT_NOTE_NS
    inv = Invoice(source_format="ubl", strict=True)
    r = _Reader(root, inv)
    rp = r.root_path

    inv.specification = clean(_text(root, "cbc:CustomizationID"))
    r.at("specification", f"{rp}/cbc:CustomizationID")
    inv.number = clean(_text(root, "cbc:ID"))
    r.at("invoice_number", f"{rp}/cbc:ID")
    r.at("issue_date", f"{rp}/cbc:IssueDate")
    inv.issue_date = read_date(inv, "issue_date", _text(root, "cbc:IssueDate"), rule=DATE_RULE)
    code_tag = "cbc:CreditNoteTypeCode" if is_credit else "cbc:InvoiceTypeCode"
    r.at("type", f"{rp}/{code_tag}")
    inv.type_code = clean(_text(root, code_tag))
    if inv.type_code is not None:
        inv.type = CREDIT_NOTE if is_credit or inv.type_code in CREDIT_NOTE_CODES else INVOICE
    if is_credit:
        r.at("due_date", f"{rp}/cac:PaymentMeans/cbc:PaymentDueDate")
        due = _text(root, "cac:PaymentMeans/cbc:PaymentDueDate") or _text(root, "cbc:DueDate")
    else:
        r.at("due_date", f"{rp}/cbc:DueDate")
        due = _text(root, "cbc:DueDate")
    inv.due_date = read_date(inv, "due_date", due, rule=DATE_RULE)
    inv.currency = clean(_text(root, "cbc:DocumentCurrencyCode"))
    r.at("currency", f"{rp}/cbc:DocumentCurrencyCode")
    inv.order_reference = clean(_text(root, "cac:OrderReference/cbc:ID"))
    r.at("order_reference", f"{rp}/cac:OrderReference/cbc:ID")
    inv.preceding_invoice = clean(_text(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"))

    _supplier(r)
    _lines(r, is_credit)
    _allowances_charges(r)
    _tax(r)
    _totals(r)
    _currency_ids(r)
    return inv


def _supplier(r: _Reader) -> None:
    inv = r.inv
    base = f"{r.root_path}/cac:AccountingSupplierParty/cac:Party"
    r.at("supplier", base)
    r.at("supplier.name", f"{base}/cac:PartyLegalEntity/cbc:RegistrationName")
    party = _find(r.root, "cac:AccountingSupplierParty/cac:Party")
    if party is None:
        return
    s = inv.supplier
    endpoint = _find(party, "cbc:EndpointID")
    if endpoint is not None:
        s.peppol_id = scheme_value(endpoint.get("schemeID"), endpoint.text)
    for tax_scheme in party.findall("cac:PartyTaxScheme", NS):
        if (clean(_text(tax_scheme, "cac:TaxScheme/cbc:ID")) or "").upper() == "VAT":
            s.vat_id = clean(_text(tax_scheme, "cbc:CompanyID"))
    ids = []
    for pid in party.findall("cac:PartyIdentification/cbc:ID", NS):
        ids.append(scheme_value(pid.get("schemeID"), pid.text))
    legal = _find(party, "cac:PartyLegalEntity/cbc:CompanyID")
    if legal is not None:
        ids.append(scheme_value(legal.get("schemeID"), legal.text))
    s.identifiers = list(dict.fromkeys(i for i in ids if i))
    s.name = clean(_text(party, "cac:PartyLegalEntity/cbc:RegistrationName")) or clean(
        _text(party, "cac:PartyName/cbc:Name"))


def _line_allowances(r: _Reader, line_el: etree._Element, field: str, base: str,
                     ) -> tuple[Decimal, Decimal]:
    allowances = charges = Decimal(0)
    for k, ac in enumerate(line_el.findall("cac:AllowanceCharge", NS), start=1):
        amount = r.dec(f"{field}.allowances_charges.{k - 1}", ac, "cbc:Amount",
                       f"{base}/cac:AllowanceCharge[{k}]")
        if amount is None:
            continue
        if (clean(_text(ac, "cbc:ChargeIndicator")) or "").lower() == "true":
            charges += amount
        else:
            allowances += amount
    return allowances, charges


def _lines(r: _Reader, is_credit: bool) -> None:
    inv = r.inv
    tag = "cac:CreditNoteLine" if is_credit else "cac:InvoiceLine"
    qty_tag = "cbc:CreditedQuantity" if is_credit else "cbc:InvoicedQuantity"
    r.at("lines", f"{r.root_path}/{tag}")
    for i, el in enumerate(r.root.findall(tag, NS)):
        base = f"{r.root_path}/{tag}[{i + 1}]"
        f = f"lines.{i}"
        ln = Line()
        ln.line_no = clean(_text(el, "cbc:ID"))
        r.at(f"{f}.line_no", f"{base}/cbc:ID")
        ln.quantity = r.dec(f"{f}.quantity", el, qty_tag, base)
        qty_el = _find(el, qty_tag)
        ln.uom = clean(qty_el.get("unitCode")) if qty_el is not None else None
        r.at(f"{f}.uom", f"{base}/{qty_tag}/@unitCode")
        ln.net_amount = r.dec(f"{f}.net_amount", el, "cbc:LineExtensionAmount", base)
        ln.po_line_no = clean(_text(el, "cac:OrderLineReference/cbc:LineID"))
        r.at(f"{f}.description", f"{base}/cac:Item/cbc:Name")
        ln.description = clean(_text(el, "cac:Item/cbc:Name"))
        if ln.description is None and clean(_text(el, "cac:Item/cbc:Description")):
            inv.parse_issues.append(Issue(f"{f}.description", "BR-25",
                                          "the item name (BT-153) is missing",
                                          inv.source_paths[f"{f}.description"]))
            ln.description = clean(_text(el, "cac:Item/cbc:Description"))
        ln.tax_category = clean(_text(el, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID"))
        r.at(f"{f}.tax_category", f"{base}/cac:Item/cac:ClassifiedTaxCategory/cbc:ID")
        ln.tax_rate = r.dec(f"{f}.tax_rate", el, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
                            base)
        price = r.dec(f"{f}.unit_price", el, "cac:Price/cbc:PriceAmount", base)
        base_qty = r.dec(f"{f}.base_quantity", el, "cac:Price/cbc:BaseQuantity", base)
        ln.price_amount, ln.base_quantity = price, base_qty
        if price is not None and base_qty is not None and base_qty != 0:
            ln.unit_price = unit_price(price, base_qty)
        elif price is not None and base_qty == 0:
            inv.parse_issues.append(Issue(f"{f}.base_quantity", "P2P-BASE-QUANTITY",
                                          "the item price base quantity (BT-149) must not be 0",
                                          inv.source_paths.get(f"{f}.base_quantity")))
            ln.unit_price = price
        else:
            ln.unit_price = price
        ln.allowances, ln.charges = _line_allowances(r, el, f, base)
        inv.lines.append(ln)


def _allowances_charges(r: _Reader) -> None:
    for i, ac in enumerate(r.root.findall("cac:AllowanceCharge", NS)):
        base = f"{r.root_path}/cac:AllowanceCharge[{i + 1}]"
        f = f"allowances_charges.{i}"
        amount = r.dec(f"{f}.amount", ac, "cbc:Amount", base)
        r.inv.allowances_charges.append(AllowanceCharge(
            charge=(clean(_text(ac, "cbc:ChargeIndicator")) or "").lower() == "true",
            amount=amount,
            reason=clean(_text(ac, "cbc:AllowanceChargeReason")) or clean(
                _text(ac, "cbc:AllowanceChargeReasonCode")),
            tax_category=clean(_text(ac, "cac:TaxCategory/cbc:ID")),
            tax_rate=r.dec(f"{f}.tax_rate", ac, "cac:TaxCategory/cbc:Percent", base),
        ))


def _tax(r: _Reader) -> None:
    """The TaxTotal in the document currency (BT-110 + BG-23); one in the tax currency (BT-111)
    carries no breakdown and is not the invoice's VAT total."""
    inv = r.inv
    inv.tax_subtotals = []
    totals = r.root.findall("cac:TaxTotal", NS)
    chosen, index = None, 0
    for i, tt in enumerate(totals):
        amount_el = _find(tt, "cbc:TaxAmount")
        currency = amount_el.get("currencyID") if amount_el is not None else None
        if tt.find("cac:TaxSubtotal", NS) is not None or currency == inv.currency:
            chosen, index = tt, i
            break
    if chosen is None:
        r.at("totals.tax", f"{r.root_path}/cac:TaxTotal/cbc:TaxAmount")
        return
    base = f"{r.root_path}/cac:TaxTotal[{index + 1}]"
    inv.totals.tax = r.dec("totals.tax", chosen, "cbc:TaxAmount", base)
    r.at("tax_subtotals", f"{base}/cac:TaxSubtotal")
    for k, st in enumerate(chosen.findall("cac:TaxSubtotal", NS)):
        sb = f"{base}/cac:TaxSubtotal[{k + 1}]"
        f = f"tax_subtotals.{k}"
        inv.tax_subtotals.append(TaxSubtotal(
            category=clean(_text(st, "cac:TaxCategory/cbc:ID")),
            rate=r.dec(f"{f}.rate", st, "cac:TaxCategory/cbc:Percent", sb),
            taxable=r.dec(f"{f}.taxable", st, "cbc:TaxableAmount", sb),
            amount=r.dec(f"{f}.amount", st, "cbc:TaxAmount", sb),
        ))


def _totals(r: _Reader) -> None:
    t = r.inv.totals
    base = f"{r.root_path}/cac:LegalMonetaryTotal"
    lmt = _find(r.root, "cac:LegalMonetaryTotal")
    fields = {
        "line_total": "cbc:LineExtensionAmount",
        "net": "cbc:TaxExclusiveAmount",
        "gross": "cbc:TaxInclusiveAmount",
        "allowances": "cbc:AllowanceTotalAmount",
        "charges": "cbc:ChargeTotalAmount",
        "prepaid": "cbc:PrepaidAmount",
        "rounding": "cbc:PayableRoundingAmount",
        "payable": "cbc:PayableAmount",
    }
    for name, tag in fields.items():
        if lmt is None:
            r.at(f"totals.{name}", f"{base}/{tag}")
        else:
            setattr(t, name, r.dec(f"totals.{name}", lmt, tag, base))


def _currency_ids(r: _Reader) -> None:
    """PEPPOL-EN16931-R051: every amount is in the document currency, except BT-111 (the VAT
    total in the tax accounting currency: a TaxTotal without a breakdown)."""
    inv = r.inv
    if not inv.currency:
        return
    for el in r.root.iter():
        currency = el.get("currencyID")
        if currency is None or currency.strip() == inv.currency:
            continue
        parent = el.getparent()
        if (parent is not None and etree.QName(parent).localname == "TaxTotal"
                and parent.find("cac:TaxSubtotal", NS) is None):
            continue
        path = f"{r.root_path}/" + _prefixed(r.root.getroottree().getelementpath(el))
        inv.parse_issues.append(Issue(
            "currency", "PEPPOL-EN16931-R051",
            f"amount in {currency!r}, but the document currency is {inv.currency!r}", path))


def _prefixed(path: str) -> str:
    """lxml's element path with `{namespace}` tags, written with the usual prefixes."""
    return path.replace("{" + CAC + "}", "cac:").replace("{" + CBC + "}", "cbc:")


__all__ = ["CREDIT_NOTE_NS", "INVOICE_NS", "parse_ubl"]
