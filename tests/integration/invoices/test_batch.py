"""POST /invoices/batch: a CSV of invoice lines → one result per invoice (207)."""

from __future__ import annotations

import pytest

from tests.unit.invoices.test_native_csv import BAD_C, GOOD_A, GOOD_A2, GOOD_B, csv_body

pytestmark = pytest.mark.integration


def post_csv(svc, body: bytes, headers, content_type: str = "text/csv"):
    return svc.client.post("/invoices/batch", content=body,
                           headers={**headers, "Content-Type": content_type})


def test_a_batch_gives_one_result_per_invoice_and_bad_ones_block_nothing(invoices, integration,
                                                                         clerk):
    # The same invoice again in the same batch, its number restyled.
    again = (GOOD_A.replace("A-100", "a 100"), GOOD_A2.replace("A-100", "a 100"))
    resp = post_csv(invoices, csv_body(GOOD_A, GOOD_B, GOOD_A2, BAD_C, *again), integration)
    assert resp.status_code == 207
    body = resp.json()
    results = {r["invoice_number"]: r for r in body["results"]}
    assert body["summary"] == {"created": 2, "duplicate": 1, "invalid": 1}
    assert results["A-100"]["status"] == 201 and results["A-100"]["rows"] == [1, 3]
    assert results["B-7"]["status"] == 201
    assert results["C-1"]["status"] == 422
    assert results["C-1"]["errors"][0]["rule"] == "PEPPOL-EN16931-R120"
    assert results["C-1"]["errors"][0]["path"] == "row 4: net_amount"
    assert results["a 100"]["status"] == 409
    assert results["a 100"]["existing_id"] == results["A-100"]["id"]

    got = invoices.client.get(f"/invoices/{results['A-100']['id']}", headers=clerk).json()
    assert got["source_format"] == "csv"
    assert [ln["description"] for ln in got["lines"]] == ["Bolts", "Nuts"]
    assert got["totals"]["payable"] == "41.65"
    original = invoices.client.get(f"/invoices/{results['A-100']['id']}/original", headers=clerk)
    assert original.headers["content-type"].startswith("text/csv")
    assert original.text.splitlines()[1].startswith("SUP-ACME,,A-100")


@pytest.mark.parametrize(("body", "ctype", "status"), [
    (csv_body(GOOD_B), "application/json", 415),
    (b"\xff\xfe\x00", "text/csv", 400),
    (csv_body(GOOD_B + ",1"), "text/csv", 400),
    (b"invoice_number\nX\n", "text/csv", 422),
])
def test_batch_refusals(invoices, clerk, body, ctype, status):
    resp = post_csv(invoices, body, clerk, ctype)
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
