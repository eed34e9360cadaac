"""POST /invoices over HTTP for every format, the error statuses, reads and paging."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from tests.integration.invoices.conftest import post
from tests.support.auth import bearer
from tests.support.poll import wait_until
from tests.support.stack import service_engine
from tests.unit.invoices.documents import blank_pdf, edit_ubl, make_cii, make_facturx, native
from tests.unit.invoices.test_xml_safety import ATTACKS

pytestmark = pytest.mark.integration


def count(svc, table: str = "invoices") -> int:
    engine = service_engine(svc.settings, "invoices")
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(text(table))).scalar_one()
    finally:
        engine.dispose()


def test_native_json_is_stored_normalised_with_its_original(invoices, integration, clerk):
    body = json.dumps(native("NJ-1", supplier={"id": "SUP-NJ", "vat_id": "DE1", "name": "NJ"}))
    resp = post(invoices, body, "application/json", integration)
    assert resp.status_code == 201, resp.json()
    created = resp.json()
    assert created["status"] == "received" and created["flags"] == []
    assert resp.headers["location"] == f"/invoices/{created['id']}"
    got = invoices.client.get(f"/invoices/{created['id']}", headers=clerk).json()
    assert got["source_format"] == "json"
    assert got["invoice_number"] == "NJ-1"
    assert got["supplier"]["vat_id"] == "DE1" and got["supplier_id"] == "SUP-NJ"
    assert got["lines"][0]["po_line_no"] == "1"
    assert got["totals"]["gross"] == "1190.00"
    assert got["match"] is None
    # Once its invoice.received is on the broker (with matching), the status is `matching`.
    got = wait_until(lambda: (g := invoices.client.get(f"/invoices/{created['id']}",
                                                       headers=clerk).json())["status"]
                     == "matching" and g, message="status matching")
    assert [h["status"] for h in got["history"]] == ["received", "matching"]
    original = invoices.client.get(f"/invoices/{created['id']}/original", headers=clerk)
    assert original.content == body.encode()
    assert original.headers["content-type"].startswith("application/json")


def test_cii_and_factur_x_are_accepted(invoices, integration, clerk):
    resp = post(invoices, make_cii("CII-HTTP-1"), "application/xml", integration)
    assert resp.status_code == 201, resp.json()
    assert resp.json()["source_format"] == "cii"
    pdf = make_facturx(make_cii("FX-HTTP-1", vat_id="DE55555"))
    resp = post(invoices, pdf, "application/pdf", integration)
    assert resp.status_code == 201, resp.json()
    invoice_id = resp.json()["id"]
    assert invoices.client.get(f"/invoices/{invoice_id}", headers=clerk).json()[
        "source_format"] == "facturx"
    original = invoices.client.get(f"/invoices/{invoice_id}/original", headers=clerk)
    assert original.content == pdf
    assert original.headers["content-type"] == "application/pdf"


def test_a_pdf_without_embedded_xml_is_422_saying_so(invoices, clerk):
    before = count(invoices)
    resp = post(invoices, blank_pdf(), "application/pdf", clerk)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert "no embedded Factur-X" in resp.json()["detail"]
    assert resp.json()["errors"][0]["rule"] == "P2P-FACTURX-XML"
    assert count(invoices) == before


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_xxe_and_entity_bombs_are_400_and_store_nothing(invoices, clerk, attack):
    before = count(invoices), count(invoices, "outbox")
    resp = post(invoices, ATTACKS[attack], "application/xml", clerk)
    assert resp.status_code == 400
    assert resp.json()["type"] == "unsafe-xml"
    assert (count(invoices), count(invoices, "outbox")) == before


def test_broken_arithmetic_is_422_with_every_error_and_changes_nothing(invoices, peppol_dir,
                                                                        clerk):
    xml = edit_ubl(peppol_dir / "Allowance-example.xml", {
        "cac:InvoiceLine[1]/cac:Price/cbc:PriceAmount": "999",
        "cac:LegalMonetaryTotal/cbc:ChargeTotalAmount": "250",
        "cac:LegalMonetaryTotal/cbc:PayableAmount": "1.00",
    }, number="BROKEN-1")
    before = count(invoices)
    resp = post(invoices, xml, "application/xml", clerk)
    assert resp.status_code == 422
    errors = resp.json()["errors"]
    assert {"PEPPOL-EN16931-R120", "BR-CO-12", "BR-CO-16"} <= {e["rule"] for e in errors}
    r120 = next(e for e in errors if e["rule"] == "PEPPOL-EN16931-R120")
    assert r120["path"] == "/Invoice/cac:InvoiceLine[1]/cbc:LineExtensionAmount"
    assert r120["field"] == "lines.0.net_amount"
    assert count(invoices) == before


@pytest.mark.parametrize(("body", "ctype", "status"), [
    (b'{"type": "invoice", ', "application/json", 400),
    (b"<Invoice><ID>1</Invoice>", "application/xml", 400),
    (b"", "application/json", 400),
    (b"%PDF-1.4 nonsense", "application/pdf", 400),
    (b"a,b\n1,2\n", "text/csv", 415),
    (b"hello", "text/plain", 415),
    (b'{"type": "receipt"}', "application/json", 422),
    (b"[]", "application/json", 422),
])
def test_bad_bodies_get_problem_details(invoices, clerk, body, ctype, status):
    resp = post(invoices, body, ctype, clerk)
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == status


def test_an_oversize_body_is_413(invoices, clerk):
    too_big = b"<a>" + b"x" * (invoices.settings.max_body_bytes + 1) + b"</a>"
    resp = post(invoices, too_big, "application/xml", clerk)
    assert resp.status_code == 413


def test_roles(invoices):
    body = json.dumps(native("ROLE-1"))
    assert post(invoices, body, "application/json", {}).status_code == 401
    assert post(invoices, body, "application/json", bearer("rita", "requester")).status_code == 403
    assert invoices.client.get("/invoices", headers=bearer("rita", "requester")).status_code == 403
    assert invoices.client.get("/invoices", headers=bearer("audrey", "auditor")).status_code == 200


def test_unknown_invoice_is_404(invoices, clerk):
    assert invoices.client.get("/invoices/nope", headers=clerk).status_code == 404
    assert invoices.client.get("/invoices/nope/original", headers=clerk).status_code == 404


def test_list_filters_and_pages(invoices, clerk):
    ids = []
    for n in range(5):
        doc = native(f"PAGE-{n}", supplier={"id": "SUP-PAGER"}, order_reference="PO-PAGES",
                     gross=f"{1000 + n * 119}.00")
        resp = post(invoices, json.dumps(doc), "application/json", clerk)
        assert resp.status_code == 201, resp.json()
        ids.append(resp.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"supplier_id": "SUP-PAGER", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = invoices.client.get("/invoices", params=params, headers=clerk).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each once
    by_po = invoices.client.get("/invoices", params={"po_number": "PO-PAGES"},
                                headers=clerk).json()
    assert {i["id"] for i in by_po["items"]} == set(ids)
    wait_until(lambda: {i["id"] for i in invoices.client.get(
        "/invoices", params={"po_number": "PO-PAGES", "status": "matching"},
        headers=clerk).json()["items"]} == set(ids), message="all five in matching")
    assert invoices.client.get("/invoices", params={"status": "matched", "po_number": "PO-PAGES"},
                               headers=clerk).json()["items"] == []
    assert invoices.client.get("/invoices", params={"status": "bogus"},
                               headers=clerk).status_code == 422
    for cursor in ("!!", "czk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"):  # junk; a number beyond bigint
        assert invoices.client.get("/invoices", params={"cursor": cursor},
                                   headers=clerk).status_code == 400
    assert invoices.client.get("/invoices", params={"limit": 501},
                               headers=clerk).status_code == 422


def test_openapi_documents_the_native_schema_and_csv_columns(invoices):
    doc = invoices.client.get("/openapi.json").json()
    assert "NativeInvoice" in doc["components"]["schemas"]
    assert "total_payable" in doc["paths"]["/invoices/batch"]["post"]["description"]
    assert "application/pdf" in doc["paths"]["/invoices"]["post"]["requestBody"]["content"]
    conflict = doc["paths"]["/invoices"]["post"]["responses"]["409"]
    assert "application/problem+json" in conflict["content"]  # the platform's error docs stay


def _metric(svc, line_start: str) -> float:
    text_ = svc.client.get("/metrics").text
    for line in text_.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_intake_metrics(invoices, clerk):
    received = 'p2p_invoices_received_total{format="json"}'
    rejected = 'p2p_invoices_rejected_on_intake_total{reason="unsafe_xml"}'
    exact = 'p2p_invoice_duplicates_total{kind="exact"}'
    before = [_metric(invoices, m) for m in (received, rejected, exact)]
    body = json.dumps(native("MET-1", supplier={"id": "SUP-MET"}))
    assert post(invoices, body, "application/json", clerk).status_code == 201
    assert post(invoices, body, "application/json", clerk).status_code == 409
    assert post(invoices, ATTACKS["xxe-file"], "application/xml", clerk).status_code == 400
    after = [_metric(invoices, m) for m in (received, rejected, exact)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


def test_nul_characters_are_refused_not_stored(invoices, clerk):
    from tests.unit.invoices.test_native_csv import GOOD_B, csv_body

    doc = native("A\u0000B")
    doc["lines"][0]["description"] = "x\u0000y"
    resp = post(invoices, json.dumps(doc), "application/json", clerk)
    assert resp.status_code == 422
    assert {(e["field"], e["rule"]) for e in resp.json()["errors"]} == {
        ("invoice_number", "P2P-TEXT"), ("lines.0.description", "P2P-TEXT")}
    batch = invoices.client.post(
        "/invoices/batch", content=csv_body(GOOD_B.replace("Consulting", "Con\x00sulting")),
        headers={**clerk, "Content-Type": "text/csv"})
    assert batch.status_code == 207 and batch.json()["results"][0]["status"] == 422
    assert invoices.client.get("/invoices", params={"supplier_id": "a\x00b"},
                               headers=clerk).status_code == 422
    assert invoices.client.get("/invoices/a%00b", headers=clerk).status_code == 404
    assert invoices.client.get("/invoices/a%00b/original", headers=clerk).status_code == 404


def test_dates_at_the_end_of_the_calendar(invoices, clerk):
    for number, day in (("EDGE-1", "9999-12-31"), ("EDGE-2", "0001-01-01")):
        body = json.dumps(native(number, supplier={"id": "SUP-EDGE"}, issue_date=day))
        assert post(invoices, body, "application/json", clerk).status_code == 201


def test_very_long_values_are_stored_or_refused_never_500(invoices, peppol_dir, clerk):
    legal_name = "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName"
    xml = edit_ubl(peppol_dir / "vat-category-O.xml", {legal_name: "N" * 5000},
                   number="L" * 8000)
    first = post(invoices, xml, "application/xml", clerk)
    assert first.status_code == 201  # the unique key holds a hash of what is too long to index
    again = post(invoices, xml, "application/xml", clerk)
    assert again.status_code == 409 and again.json()["existing_id"] == first.json()["id"]
    xml = edit_ubl(peppol_dir / "vat-category-O.xml", {}, number="LONG-REF",
                   order_reference="P" * 5000)
    resp = post(invoices, xml, "application/xml", clerk)
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{
        "path": "/Invoice/cac:OrderReference/cbc:ID", "field": "order_reference",
        "rule": "P2P-LENGTH", "message": "the order reference is longer than 200 characters"}]
