"""Invoice documents for tests: CII made by drafthorse, Factur-X PDFs made by factur-x + pypdf,
native JSON bodies, and PEPPOL examples with edits."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from drafthorse.models.accounting import ApplicableTradeTax
from drafthorse.models.document import Document
from drafthorse.models.party import TaxRegistration
from drafthorse.models.tradelines import LineItem
from facturx import generate_from_binary
from lxml import etree
from pypdf import PdfWriter

CENT = Decimal("0.01")


def make_cii(number: str = "CII-1001", *, type_code: str = "380", currency: str = "EUR",
             issue: date = date(2026, 11, 2), seller: str = "Lieferant GmbH",
             vat_id: str = "DE123456789", order_reference: str | None = "PO-000123",
             lines: list[tuple[str, str, str]] | None = None, rate: str = "19.00",
             prepaid: str = "0.00") -> bytes:
    """An EN 16931 CII invoice; `lines` are (quantity, net price, PO line id)."""
    lines = lines or [("10", "25.50", "1"), ("3", "100.00", "2")]
    doc = Document()
    doc.context.guideline_parameter.id = "urn:cen.eu:en16931:2017"
    doc.header.id = number
    doc.header.type_code = type_code
    doc.header.issue_date_time = issue
    doc.trade.agreement.seller.name = seller
    doc.trade.agreement.seller.address.country_id = "DE"
    doc.trade.agreement.seller.tax_registrations.add(TaxRegistration(id=("VA", vat_id)))
    doc.trade.agreement.buyer.name = "Kunde GmbH"
    doc.trade.agreement.buyer.address.country_id = "DE"
    if order_reference:
        doc.trade.agreement.buyer_order.issuer_assigned_id = order_reference
    doc.trade.settlement.currency_code = currency
    line_total = Decimal(0)
    for n, (qty, price, po_line) in enumerate(lines, start=1):
        net = (Decimal(qty) * Decimal(price)).quantize(CENT)
        line_total += net
        li = LineItem()
        li.document.line_id = str(n)
        li.product.name = f"Widget {n}"
        li.agreement.net.amount = Decimal(price)
        li.agreement.buyer_order.line_id = po_line
        li.delivery.billed_quantity = (Decimal(qty), "C62")
        li.settlement.trade_tax.type_code = "VAT"
        li.settlement.trade_tax.category_code = "S"
        li.settlement.trade_tax.rate_applicable_percent = Decimal(rate)
        li.settlement.monetary_summation.total_amount = net
        doc.trade.items.add(li)
    tax = (line_total * Decimal(rate) / 100).quantize(CENT)
    trade_tax = ApplicableTradeTax()
    trade_tax.calculated_amount = tax
    trade_tax.basis_amount = line_total
    trade_tax.type_code = "VAT"
    trade_tax.category_code = "S"
    trade_tax.rate_applicable_percent = Decimal(rate)
    doc.trade.settlement.trade_tax.add(trade_tax)
    ms = doc.trade.settlement.monetary_summation
    ms.line_total = line_total
    ms.tax_basis_total = line_total
    ms.tax_total = (tax, currency)
    ms.grand_total = line_total + tax
    ms.prepaid_total = Decimal(prepaid)
    ms.due_amount = line_total + tax - Decimal(prepaid)
    return doc.serialize(schema="FACTUR-X_EN16931")


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_facturx(xml: bytes | None = None) -> bytes:
    """A Factur-X PDF (EN 16931 level) embedding `xml` (default: a drafthorse CII)."""
    return generate_from_binary(blank_pdf(), xml or make_cii(), flavor="factur-x",
                                level="en16931", check_xsd=True)


def native(number: str = "INV-001", *, supplier: dict | None = None, gross: str = "1190.00",
           issue_date: str = "2026-11-02", type_: str = "invoice",
           order_reference: str | None = "PO-000123") -> dict:
    """A valid native JSON invoice: 2 lines, 19 % VAT; `gross` scales the first line."""
    gross_d = Decimal(gross)
    net = (gross_d / Decimal("1.19")).quantize(CENT)
    tax = gross_d - net
    second = Decimal("100.00")
    first = net - second
    return {
        "type": type_,
        "invoice_number": number,
        "issue_date": issue_date,
        "currency": "EUR",
        "supplier": supplier or {"id": "SUP-ACME", "name": "ACME Ltd"},
        "order_reference": order_reference,
        "lines": [
            {"line_no": "1", "description": "Widgets", "quantity": "1", "uom": "C62",
             "unit_price": str(first), "net_amount": str(first), "po_line_no": "1",
             "tax_rate": "19"},
            {"line_no": "2", "description": "Delivery", "quantity": "2", "uom": "C62",
             "unit_price": "50.00", "net_amount": str(second), "po_line_no": "2",
             "tax_rate": "19"},
        ],
        "totals": {"net": str(net), "tax": str(tax), "gross": str(gross_d),
                   "payable": str(gross_d)},
    }


def native_bytes(**kwargs) -> bytes:
    return json.dumps(native(**kwargs)).encode()


UBL_NS = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
          "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"}


def edit_ubl(path: Path, edits: dict[str, str], *, number: str | None = None,
             order_reference: str | None = None) -> bytes:
    """A PEPPOL example with element texts replaced (`edits`: XPath relative to the root →
    text; `.../@attr` sets an attribute), optionally another invoice number and an OrderReference."""
    root = etree.fromstring(path.read_bytes())
    for xpath, text in edits.items():
        element_path, _, attribute = xpath.partition("/@")
        found = root.xpath(element_path, namespaces=UBL_NS)
        assert found, f"{xpath} not in {path.name}"
        if attribute:
            found[0].set(attribute, text)
        else:
            found[0].text = text
    if number is not None:
        root.find("cbc:ID", UBL_NS).text = number
    if order_reference is not None:
        anchor = root.find("cbc:BuyerReference", UBL_NS)
        if anchor is None:
            anchor = root.find("cbc:DocumentCurrencyCode", UBL_NS)
        ref = etree.Element(f"{{{UBL_NS['cac']}}}OrderReference")
        etree.SubElement(ref, f"{{{UBL_NS['cbc']}}}ID").text = order_reference
        anchor.addnext(ref)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


TOTAL_TAGS = {"line_total": "LineExtensionAmount", "net": "TaxExclusiveAmount",
              "gross": "TaxInclusiveAmount", "payable": "PayableAmount",
              "allowances": "AllowanceTotalAmount", "charges": "ChargeTotalAmount",
              "prepaid": "PrepaidAmount", "rounding": "PayableRoundingAmount"}


def legal_monetary_total(xml: bytes) -> dict[str, Decimal]:
    """The amounts a UBL document states in its cac:LegalMonetaryTotal."""
    lmt = etree.fromstring(xml).find("cac:LegalMonetaryTotal", UBL_NS)
    found = {}
    for name, tag in TOTAL_TAGS.items():
        el = lmt.find(f"cbc:{tag}", UBL_NS)
        if el is not None:
            found[name] = Decimal(el.text)
    return found
