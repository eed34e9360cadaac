"""The demo's invoices in every format are what the invoices service accepts: each is parsed
and validated by the service's own parsers and rules (pure functions, no stack needed)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from services.invoices.parsers import parse_document
from services.invoices.parsers.csv_batch import REQUIRED_COLUMNS, parse_csv_batch
from services.invoices.validation import validate
from shared.cli.demo import documents as docs
from shared.cli.demo.world import DEMO_SUPPLIERS, PEPPOL_EXAMPLE_SUPPLIER

ACME = DEMO_SUPPLIERS[0]


def _doc(**kw) -> docs.InvoiceDoc:
    base = dict(
        number="ACM-2026-0042", issue_date=date(2026, 10, 5), currency="EUR", supplier=ACME,
        lines=(docs.DocLine("1", "Laptop 14in, 32 GB RAM", Decimal("3"), Decimal("1450.00"), "EA",
                            "1"),
               docs.DocLine("2", "Printer paper A4", Decimal("12"), Decimal("24.55"), "XBX",
                            "2")),
        order_reference="PO-000123", due_date=date(2026, 11, 4),
        tax_rate=docs.tax_rate_for(ACME))
    base.update(kw)
    return docs.InvoiceDoc(**base)


@pytest.mark.parametrize("fmt", ["json", "ubl", "cii", "facturx"])
def test_every_format_parses_and_validates_with_the_intake_rules(fmt):
    doc = _doc()
    body, content_type = docs.encode(doc, fmt)
    inv = parse_document(body, content_type)
    assert validate(inv) == []
    assert inv.source_format == fmt
    assert inv.number == doc.number
    assert inv.order_reference == "PO-000123"
    assert inv.currency == "EUR"
    assert inv.supplier.vat_id == ACME.vat_id
    assert [ln.po_line_no for ln in inv.lines] == ["1", "2"]
    assert [ln.quantity for ln in inv.lines] == [Decimal("3"), Decimal("12")]
    assert inv.totals.net == doc.net == Decimal("4644.60")
    assert inv.totals.payable == doc.gross == Decimal("4644.60") + Decimal("882.47")


@pytest.mark.parametrize("fmt", ["json", "ubl", "cii"])
def test_credit_notes_reference_the_invoice_they_correct(fmt):
    doc = _doc(number="CN-1", type="credit_note", preceding_invoice="ACM-2026-0042",
               lines=(docs.DocLine("1", "Laptop 14in", Decimal("1"), Decimal("1450.00"), "EA",
                                   "1"),))
    inv = parse_document(*docs.encode(doc, fmt))
    assert inv.type == "credit_note"
    assert inv.preceding_invoice == "ACM-2026-0042"
    assert validate(inv) == []


def test_ubl_follows_the_peppol_bis_structure():
    root = etree.fromstring(docs.to_ubl(_doc()))
    ns = {"cbc": docs.UBL_NS["cbc"], "cac": docs.UBL_NS["cac"]}
    assert root.findtext("cbc:CustomizationID", namespaces=ns) == docs.PEPPOL_CUSTOMIZATION
    assert root.findtext("cac:OrderReference/cbc:ID", namespaces=ns) == "PO-000123"
    endpoint = root.find("cac:AccountingSupplierParty/cac:Party/cbc:EndpointID", ns)
    assert (endpoint.get("schemeID"), endpoint.text) == tuple(ACME.peppol_id.split(":"))
    # UBL element order: OrderReference after BuyerReference, lines last.
    tags = [etree.QName(child).localname for child in root]
    assert tags.index("BuyerReference") < tags.index("OrderReference") < \
        tags.index("AccountingSupplierParty") < tags.index("LegalMonetaryTotal") < \
        tags.index("InvoiceLine")


def test_facturx_embeds_the_cii_document():
    from facturx import get_facturx_xml_from_pdf

    doc = _doc()
    _, xml = get_facturx_xml_from_pdf(docs.to_facturx(doc), check_xsd=False)
    assert etree.fromstring(xml).tag.endswith("CrossIndustryInvoice")
    assert b"ACM-2026-0042" in xml


def test_csv_batches_carry_the_documented_columns_and_group_by_invoice():
    text = docs.to_csv([_doc(), _doc(number="ACM-2026-0043")])
    header = text.splitlines()[0].split(",")
    assert set(REQUIRED_COLUMNS) <= set(header)
    items = parse_csv_batch(text.encode())
    assert [i.invoice_number for i in items] == ["ACM-2026-0042", "ACM-2026-0043"]
    for item in items:
        assert not item.issues
        assert validate(item.invoice) == []
        assert len(item.invoice.lines) == 2


def test_zero_rated_suppliers_use_category_z():
    initech = next(s for s in DEMO_SUPPLIERS if s.country == "US")
    doc = _doc(supplier=initech, currency="USD", tax_rate=docs.tax_rate_for(initech))
    assert doc.tax == 0 and doc.tax_category == "Z"
    assert validate(parse_document(*docs.encode(doc, "ubl"))) == []


def test_the_real_peppol_example_is_fitted_to_a_po(peppol_dir):
    example = (peppol_dir / "base-example.xml").read_bytes()
    lines = [docs.DocLine("1", "Senior consultant", Decimal("10"), Decimal("400"), "DAY", "1"),
             docs.DocLine("2", "Junior consultant", Decimal("5"), Decimal("500"), "DAY", "2")]
    body = docs.ubl_from_example(example, number="INV-77", issue_date=date(2026, 10, 9),
                                 po_number="PO-000777", supplier=PEPPOL_EXAMPLE_SUPPLIER,
                                 lines=lines)
    inv = parse_document(body, "application/xml")
    assert validate(inv) == []
    assert inv.order_reference == "PO-000777"
    assert inv.supplier.peppol_id == PEPPOL_EXAMPLE_SUPPLIER.peppol_id
    assert [(ln.po_line_no, ln.quantity, ln.unit_price) for ln in inv.lines] == [
        ("1", Decimal("10"), Decimal("400")), ("2", Decimal("5"), Decimal("500"))]
    assert inv.totals.net == Decimal("6500.00") and inv.totals.tax == Decimal("1625.00")
    # What is not ours stays the example's: payment terms, the buyer, item classification.
    assert b"Payment within 10 days, 2% discount" in body
    assert b"BuyerTradingName AS" in body and b"09348023" in body
    with_charge = parse_document(docs.ubl_from_example(
        example, number="INV-78", issue_date=date(2026, 10, 9), po_number="PO-000777",
        supplier=PEPPOL_EXAMPLE_SUPPLIER, lines=lines, keep_charges=True), "application/xml")
    assert validate(with_charge) == []
    assert with_charge.totals.net == Decimal("6525.00")
