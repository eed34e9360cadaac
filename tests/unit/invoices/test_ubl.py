"""UBL / PEPPOL BIS 3.0 parsing and EN 16931 validation, on the six real examples and edits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from services.invoices.domain import CORRECTIVE_INVOICE
from services.invoices.parsers import parse_document
from services.invoices.validation import validate
from tests.unit.invoices.documents import UBL_NS, edit_ubl, legal_monetary_total

EXAMPLES = ("base-example.xml", "Allowance-example.xml", "base-creditnote-correction.xml",
            "vat-category-E.xml", "vat-category-O.xml", "vat-category-Z.xml")


def rules(xml: bytes) -> set[str]:
    return {i.rule for i in validate(parse_document(xml, "application/xml"))}


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_is_valid_and_totals_equal_its_legal_monetary_total(peppol_dir, name):
    xml = (peppol_dir / name).read_bytes()
    inv = parse_document(xml, "application/xml")
    assert validate(inv) == []
    totals = inv.to_payload()["totals"]
    stated = legal_monetary_total(xml)
    assert stated  # the example does state its totals
    for field, amount in stated.items():
        assert Decimal(totals[field]) == amount, field


def test_allowance_example_lines_base_quantity_order_lines_and_allowances(peppol_dir):
    inv = parse_document((peppol_dir / "Allowance-example.xml").read_bytes(), "application/xml")
    first, second, third = inv.lines
    assert (first.unit_price, first.charges, first.allowances) == (410, 1, 101)
    assert second.unit_price == Decimal(100)  # PriceAmount 200 per BaseQuantity 2
    assert second.po_line_no == "124"
    assert (second.tax_category, second.tax_rate) == ("E", Decimal("0.0"))
    assert third.net_amount == Decimal("900.00")
    assert [(ac.charge, ac.amount, ac.reason) for ac in inv.allowances_charges] == [
        (True, Decimal(200), "Cleaning"), (False, Decimal(200), "Discount")]
    assert inv.totals.prepaid == Decimal(1000)
    assert inv.totals.tax == Decimal("1225.00")  # the EUR TaxTotal, not the SEK one (BT-111)


def test_supplier_identifiers_and_credit_note_fields(peppol_dir):
    inv = parse_document((peppol_dir / "base-creditnote-correction.xml").read_bytes(), "text/xml")
    assert inv.type == "credit_note"
    assert inv.preceding_invoice == "Snippet1"
    s = inv.supplier
    assert s.peppol_id == "0088:9482348239847239874"
    assert s.vat_id == "GB1232434"
    assert s.identifiers == ["99887766", "GB983294"]
    assert s.name == "SupplierOfficialName Ltd"
    assert [ln.quantity for ln in inv.lines] == [Decimal(7), Decimal(-3)]


def test_an_invoice_with_negative_totals_is_a_corrective_invoice_and_accepted(peppol_dir):
    path = peppol_dir / "vat-category-O.xml"
    xml = edit_ubl(path, {
        "cac:InvoiceLine/cbc:InvoicedQuantity": "-1",
        "cac:InvoiceLine/cbc:LineExtensionAmount": "-3200.00",
        "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount": "-3200.00",
        "cac:LegalMonetaryTotal/cbc:LineExtensionAmount": "-3200.00",
        "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount": "-3200.00",
        "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount": "-3200.00",
        "cac:LegalMonetaryTotal/cbc:PayableAmount": "-3200.00",
    })
    inv = parse_document(xml, "application/xml")
    assert validate(inv) == []
    assert inv.type == "invoice"
    assert inv.flags == [CORRECTIVE_INVOICE]
    assert inv.totals.payable == Decimal("-3200.00")


def test_an_order_reference_is_the_po_number(peppol_dir):
    xml = edit_ubl(peppol_dir / "base-example.xml", {}, order_reference="PO-000042")
    inv = parse_document(xml, "application/xml")
    assert validate(inv) == []
    assert inv.order_reference == "PO-000042"
    assert [ln.po_line_no for ln in inv.lines] == ["123", "123"]


# Each edit breaks one arithmetic (or code) rule of the example once; that rule must be named.
MUTATIONS = [
    ("base-example.xml", {"cac:InvoiceLine[1]/cac:Price/cbc:PriceAmount": "410"},
     "PEPPOL-EN16931-R120"),
    ("Allowance-example.xml", {"cac:InvoiceLine[2]/cac:Price/cbc:BaseQuantity": "1"},
     "PEPPOL-EN16931-R120"),
    ("base-example.xml", {"cac:LegalMonetaryTotal/cbc:LineExtensionAmount": "1400"}, "BR-CO-10"),
    ("Allowance-example.xml", {"cac:LegalMonetaryTotal/cbc:AllowanceTotalAmount": "150"},
     "BR-CO-11"),
    ("Allowance-example.xml", {"cac:LegalMonetaryTotal/cbc:ChargeTotalAmount": "250"},
     "BR-CO-12"),
    ("base-example.xml", {"cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount": "1335"}, "BR-CO-13"),
    ("base-example.xml", {"cac:TaxTotal/cbc:TaxAmount": "331.00"}, "BR-CO-14"),
    ("base-example.xml", {"cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount": "1660.00"},
     "BR-CO-15"),
    ("Allowance-example.xml", {"cac:LegalMonetaryTotal/cbc:PrepaidAmount": "900"}, "BR-CO-16"),
    ("base-example.xml", {"cac:LegalMonetaryTotal/cbc:PayableAmount": "1600.00"}, "BR-CO-16"),
    ("base-example.xml", {"cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount": "300.00"}, "BR-CO-17"),
    ("vat-category-E.xml", {"cbc:DocumentCurrencyCode": "EURO"}, "BR-CL-04"),
    ("vat-category-E.xml", {"cac:InvoiceLine/cbc:InvoicedQuantity/@unitCode": "PIECES"},
     "BR-CL-23"),
    ("vat-category-E.xml", {"cac:InvoiceLine/cbc:LineExtensionAmount/@currencyID": "USD"},
     "PEPPOL-EN16931-R051"),
    ("vat-category-E.xml", {"cbc:IssueDate": "30.08.2018"}, "PEPPOL-EN16931-F001"),
    ("vat-category-E.xml", {"cbc:ID": " "}, "BR-2"),
    ("vat-category-E.xml", {"cac:InvoiceLine/cac:Price/cbc:PriceAmount": "12O.00"},
     "P2P-FORMAT-DECIMAL"),
]


@pytest.mark.parametrize(("name", "edits", "rule"), MUTATIONS,
                         ids=[f"{m[2]}-{m[0]}" for m in MUTATIONS])
def test_breaking_a_rule_once_names_that_rule(peppol_dir, name, edits, rule):
    assert rule in rules(edit_ubl(peppol_dir / name, edits))


def test_the_one_edit_that_can_break_a_single_rule_reports_only_it(peppol_dir):
    xml = edit_ubl(peppol_dir / "base-example.xml",
                   {"cac:InvoiceLine[1]/cac:Price/cbc:PriceAmount": "410"})
    issues = validate(parse_document(xml, "application/xml"))
    assert [(i.rule, i.field) for i in issues] == [("PEPPOL-EN16931-R120", "lines.0.net_amount")]
    assert issues[0].as_dict()["path"] == "/Invoice/cac:InvoiceLine[1]/cbc:LineExtensionAmount"


def test_all_errors_of_a_document_are_reported_together(peppol_dir):
    xml = edit_ubl(peppol_dir / "Allowance-example.xml", {
        "cbc:ID": "",
        "cbc:DocumentCurrencyCode": "EURO",
        "cac:InvoiceLine[1]/cac:Price/cbc:PriceAmount": "999",
        "cac:LegalMonetaryTotal/cbc:PayableAmount": "1",
        "cac:InvoiceLine[3]/cbc:InvoicedQuantity/@unitCode": "XX-NOPE",
    })
    found = rules(xml)
    assert {"BR-2", "BR-CL-04", "PEPPOL-EN16931-R120", "BR-CO-16", "BR-CL-23"} <= found


def test_missing_required_elements_name_their_rules(peppol_dir):
    from lxml import etree

    root = etree.fromstring((peppol_dir / "vat-category-O.xml").read_bytes())
    ns = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
          "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"}
    for xpath in ("cbc:IssueDate", "cbc:InvoiceTypeCode", "cac:LegalMonetaryTotal/cbc:PayableAmount",
                  "cac:InvoiceLine/cac:Item/cbc:Name", "cac:InvoiceLine/cac:Price"):
        el = root.find(xpath, ns)
        el.getparent().remove(el)
    found = rules(etree.tostring(root))
    assert {"BR-3", "BR-4", "BR-15", "BR-25", "BR-26"} <= found


@pytest.mark.parametrize(("line_amount", "valid"), [("2800.02", True), ("2799.98", True),
                                                    ("2800.03", False), ("2799.97", False)])
def test_line_arithmetic_allows_the_peppol_slack_of_two_cents(peppol_dir, line_amount, valid):
    diff = Decimal(line_amount) - Decimal(2800)
    xml = edit_ubl(peppol_dir / "base-example.xml", {
        "cac:InvoiceLine[1]/cbc:LineExtensionAmount": line_amount,
        "cac:LegalMonetaryTotal/cbc:LineExtensionAmount": str(Decimal(1300) + diff),
        "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount": str(Decimal(1325) + diff),
        "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount": str(Decimal(1325) + diff),
        "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount": str(Decimal("1656.25") + diff),
        "cac:LegalMonetaryTotal/cbc:PayableAmount": str(Decimal("1656.25") + diff),
    })
    assert ("PEPPOL-EN16931-R120" in rules(xml)) is not valid
    assert rules(xml) <= {"PEPPOL-EN16931-R120"}


def test_a_price_per_base_quantity_is_exact_for_large_quantities(peppol_dir):
    """10.00 per 3 units × 3 000 000 units = 10 000 000.00: no rounding of 3.333333 creeps in."""
    xml = edit_ubl(peppol_dir / "vat-category-O.xml", {
        "cac:InvoiceLine/cbc:InvoicedQuantity": "3000000",
        "cac:InvoiceLine/cbc:LineExtensionAmount": "10000000.00",
        "cac:InvoiceLine/cac:Price/cbc:PriceAmount": "10.00",
        "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount": "10000000.00",
        "cac:LegalMonetaryTotal/cbc:LineExtensionAmount": "10000000.00",
        "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount": "10000000.00",
        "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount": "10000000.00",
        "cac:LegalMonetaryTotal/cbc:PayableAmount": "10000000.00",
    })
    root = etree.fromstring(xml)
    price = root.find("cac:InvoiceLine/cac:Price", UBL_NS)
    etree.SubElement(price, f"{{{UBL_NS['cbc']}}}BaseQuantity", unitCode="EA").text = "3"
    inv = parse_document(etree.tostring(root), "application/xml")
    assert validate(inv) == []
    assert inv.lines[0].unit_price == Decimal("3.333333")


@pytest.mark.parametrize(("tax", "valid"), [("331.25", True), ("330.30", True), ("332.20", True),
                                            ("330.25", False), ("332.25", False)])
def test_vat_category_amount_tolerance_is_the_cen_one(peppol_dir, tax, valid):
    xml = edit_ubl(peppol_dir / "base-example.xml", {
        "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount": tax,
        "cac:TaxTotal/cbc:TaxAmount": tax,
        "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount": str(Decimal(1325) + Decimal(tax)),
        "cac:LegalMonetaryTotal/cbc:PayableAmount": str(Decimal(1325) + Decimal(tax)),
    })
    assert rules(xml) == (set() if valid else {"BR-CO-17"})


def test_absurd_magnitudes_are_refused_not_crashed_on(peppol_dir):
    xml = edit_ubl(peppol_dir / "Allowance-example.xml", {
        "cac:InvoiceLine[2]/cac:Price/cbc:PriceAmount": "999999999999999999",
        "cac:InvoiceLine[2]/cac:Price/cbc:BaseQuantity": "0.00000000000000001",
        "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount": "99999999999999999999999",
        "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent": "99999999999999999999999",
        "cac:LegalMonetaryTotal/cbc:PayableAmount": "1" + "0" * 30,
    })
    assert {"PEPPOL-EN16931-R120", "BR-CO-17", "P2P-FORMAT-DECIMAL"} <= rules(xml)
