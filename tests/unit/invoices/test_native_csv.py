"""The native JSON schema and CSV batches, through the same model and rules."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.invoices.parsers import Malformed, SchemaInvalid, UnsupportedType, parse_document
from services.invoices.parsers.csv_batch import CsvColumnsMissing, parse_csv_batch
from services.invoices.validation import validate
from tests.unit.invoices.documents import native


def parse_json(doc) -> object:
    return parse_document(json.dumps(doc).encode(), "application/json")


def test_a_native_invoice_is_valid_and_normalised():
    inv = parse_json(native("INV-9"))
    assert validate(inv) == []
    payload = inv.to_payload()
    assert payload["invoice_number"] == "INV-9"
    assert payload["supplier"]["id"] == "SUP-ACME"
    assert payload["lines"][1] == {
        "line_no": "2", "description": "Delivery", "quantity": "2", "uom": "C62",
        "unit_price": "50.00", "net_amount": "100.00", "po_line_no": "2", "tax_category": None,
        "tax_rate": "19"}
    assert payload["totals"]["gross"] == "1190.00"


def test_schema_errors_carry_en16931_rules_and_paths():
    doc = native()
    del doc["invoice_number"]
    del doc["lines"][0]["quantity"]
    doc["totals"]["net"] = 1000.0  # a float: money must be a decimal string
    doc["issue_date"] = "2026-02-30"
    with pytest.raises(SchemaInvalid) as caught:
        parse_json(doc)
    found = {(i.field, i.rule) for i in caught.value.issues}
    assert ("invoice_number", "BR-2") in found
    assert ("lines.0.quantity", "BR-22") in found
    assert ("totals.net", "P2P-FORMAT-DECIMAL") in found
    assert ("issue_date", "P2P-FORMAT-DATE") in found


def test_native_arithmetic_rules():
    doc = native()
    doc["lines"][1]["net_amount"] = "120.00"  # 2 × 50.00 = 100.00
    doc["totals"]["payable"] = "1000.00"
    doc["currency"] = "ABC"
    found = {i.rule for i in validate(parse_json(doc))}
    assert {"PEPPOL-EN16931-R120", "BR-CO-13", "BR-CO-16", "BR-CL-04"} <= found


def test_document_allowances_in_native_json():
    doc = native(gross="1190.00")
    doc["allowances_charges"] = [{"charge": False, "amount": "10.00", "reason": "discount"}]
    assert "BR-CO-13" in {i.rule for i in validate(parse_json(doc))}
    doc["totals"]["net"] = "990.00"
    doc["totals"]["gross"] = doc["totals"]["payable"] = "1180.00"
    assert validate(parse_json(doc)) == []


@pytest.mark.parametrize("body", [b"{", b'{"a": }', b"[" * 5000, b"\xff\xfe garbage"])
def test_malformed_json_is_malformed(body):
    with pytest.raises(Malformed):
        parse_document(body, "application/json")


@pytest.mark.parametrize("ctype", ["text/plain", "text/csv", "image/png", None, ""])
def test_other_content_types_are_unsupported(ctype):
    with pytest.raises(UnsupportedType):
        parse_document(b"x", ctype)


HEADER = ("supplier_id,supplier_vat_id,invoice_number,type,issue_date,currency,order_reference,"
          "line_no,description,quantity,uom,unit_price,net_amount,po_line_no,tax_rate,"
          "total_net,total_tax,total_gross,total_payable")


def csv_body(*rows: str) -> bytes:
    return ("\r\n".join((HEADER, *rows)) + "\r\n").encode()


GOOD_A = ("SUP-ACME,,A-100,invoice,2026-11-02,EUR,PO-000001,1,Bolts,10,C62,1.50,15.00,1,19,"
          "35.00,6.65,41.65,41.65")
GOOD_A2 = ("SUP-ACME,,A-100,invoice,2026-11-02,EUR,PO-000001,2,Nuts,20,C62,1.00,20.00,2,19,"
           "35.00,6.65,41.65,41.65")
GOOD_B = (",DE999,B-7,invoice,2026-11-03,EUR,,1,Consulting,2,HUR,100.00,200.00,,19,"
          "200.00,38.00,238.00,238.00")
BAD_C = ("SUP-ACME,,C-1,invoice,2026-11-04,EUR,,1,Paper,1,C62,5.00,6.00,,19,"
         "5.00,0.95,5.95,5.95")


def test_csv_rows_are_grouped_into_invoices_and_each_stands_alone():
    items = parse_csv_batch(csv_body(GOOD_A, GOOD_B, GOOD_A2, BAD_C))
    assert [(it.invoice_number, it.rows) for it in items] == [("A-100", [1, 3]), ("B-7", [2]),
                                                              ("C-1", [4])]
    a, b, c = items
    assert a.issues == [] and validate(a.invoice) == []
    assert [ln.description for ln in a.invoice.lines] == ["Bolts", "Nuts"]
    assert a.invoice.source_format == "csv"
    assert b.invoice.supplier.vat_id == "DE999" and b.invoice.order_reference is None
    assert validate(b.invoice) == []
    c_issues = validate(c.invoice)
    assert {(i.rule, i.path) for i in c_issues} >= {("PEPPOL-EN16931-R120", "row 4: net_amount")}
    assert a.original.decode().splitlines()[1].startswith("SUP-ACME,,A-100")
    assert len(a.original.decode().splitlines()) == 3  # header + its two rows


def test_csv_rows_of_one_invoice_must_agree_on_header_columns():
    disagreeing = GOOD_A2.replace("35.00,6.65,41.65,41.65", "35.00,6.65,41.65,40.00")
    (item,) = parse_csv_batch(csv_body(GOOD_A, disagreeing))
    assert "P2P-CSV-CONSISTENCY" in {i.rule for i in item.issues}


def test_csv_schema_errors_point_at_rows_and_columns():
    (item,) = parse_csv_batch(csv_body(GOOD_B.replace(",2,HUR,", ",two,HUR,")))
    assert [(i.rule, i.path) for i in item.issues] == [("P2P-FORMAT-DECIMAL", "row 1: quantity")]


def test_csv_without_required_columns_is_rejected_as_a_whole():
    with pytest.raises(CsvColumnsMissing) as caught:
        parse_csv_batch(b"invoice_number,currency\nA,EUR\n")
    missing = {i.field for i in caught.value.issues}
    assert {"header.issue_date", "header.net_amount",
            "header.supplier_id|supplier_vat_id|supplier_peppol_id|supplier_name"} <= missing


@pytest.mark.parametrize("body", [b"", b"\xff\xfe\x00bad", csv_body(GOOD_A + ",extra"),
                                  csv_body('SUP,"unterminated')])
def test_malformed_csv_is_malformed(body):
    with pytest.raises(Malformed):
        parse_csv_batch(body)


def test_decimal_amounts_are_exact():
    inv = parse_json(native(gross="0.03"))
    assert inv.totals.gross == Decimal("0.03")


def test_blank_supplier_identifiers_do_not_identify_a_supplier():
    doc = native(supplier={"id": " ", "vat_id": "", "identifiers": ["  "], "name": "   "})
    assert "P2P-SUPPLIER" in {i.rule for i in validate(parse_json(doc))}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(rows=st.lists(st.lists(st.sampled_from(["", "x", "1", "-1", "1.5", "2026-11-02", "EUR",
                                                "invoice", "credit_note", "C62", '"q"', "1e5",
                                                "SUP-ACME", "A-1"]),
                              min_size=19, max_size=19), max_size=6),
       noise=st.binary(max_size=40))
def test_any_csv_is_answered_with_items_or_a_documented_refusal(rows, noise):
    body = csv_body(*(",".join(r) for r in rows)) + noise
    try:
        items = parse_csv_batch(body)
    except (Malformed, CsvColumnsMissing):
        return
    for item in items:
        if item.invoice is not None and not item.issues:
            assert all(i.rule for i in validate(item.invoice))
