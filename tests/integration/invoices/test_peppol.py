"""The six real PEPPOL BIS 3.0 examples over HTTP: 201 and totals equal to LegalMonetaryTotal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.invoices.app import create_app
from tests.integration.invoices.conftest import post
from tests.support.stack import run_service
from tests.unit.invoices.documents import edit_ubl, legal_monetary_total
from tests.unit.invoices.test_ubl import MUTATIONS

pytestmark = pytest.mark.integration

# Allowance-example repeats base-example's supplier (VAT GB1232434) and number (Snippet1), and
# vat-category-Z repeats vat-category-E's supplier and number (Vat-Z): each pair is one invoice
# to an AP system, so the second of a pair is a 409 in the same database. Each is accepted in a
# database of its own.
FIRST = ("base-example.xml", "base-creditnote-correction.xml", "vat-category-E.xml",
         "vat-category-O.xml")
SECOND = ("Allowance-example.xml", "vat-category-Z.xml")


def _accept_all(svc, peppol_dir, names, headers) -> dict[str, str]:
    ids = {}
    for name in names:
        xml = (peppol_dir / name).read_bytes()
        resp = post(svc, xml, "application/xml", headers)
        assert resp.status_code == 201, (name, resp.json())
        ids[name] = resp.json()["id"]
        got = svc.client.get(f"/invoices/{ids[name]}", headers=headers).json()
        assert got["source_format"] == "ubl"
        for field, expected in legal_monetary_total(xml).items():
            assert Decimal(got["totals"][field]) == expected, (name, field)
        original = svc.client.get(f"/invoices/{ids[name]}/original", headers=headers)
        assert original.content == xml
        assert original.headers["content-type"].startswith("application/xml")
    return ids


def test_all_six_examples_are_accepted_with_their_exact_totals(invoices, infra, peppol_dir, clerk):
    ids = _accept_all(invoices, peppol_dir, FIRST, clerk)
    credit = invoices.client.get(f"/invoices/{ids['base-creditnote-correction.xml']}",
                                 headers=clerk).json()
    assert credit["type"] == "credit_note"
    assert credit["preceding_invoice"] == "Snippet1"
    assert credit["preceding_invoice_id"] == ids["base-example.xml"]  # same VAT id, same number
    # The repeated supplier + number of the other two is recognised as an exact duplicate...
    dup = post(invoices, (peppol_dir / "Allowance-example.xml").read_bytes(), "application/xml",
               clerk)
    assert dup.status_code == 409
    assert dup.json()["existing_id"] == ids["base-example.xml"]
    dup = post(invoices, (peppol_dir / "vat-category-Z.xml").read_bytes(), "text/xml", clerk)
    assert dup.status_code == 409
    assert dup.json()["existing_id"] == ids["vat-category-E.xml"]
    # ... and both are accepted on a database of their own.
    with run_service(create_app, infra.settings()) as other:
        _accept_all(other, peppol_dir, SECOND, clerk)


@pytest.mark.parametrize(("name", "edits", "rule"), MUTATIONS,
                         ids=[f"{m[2]}-{m[0]}" for m in MUTATIONS])
def test_a_mutated_example_is_422_naming_the_rule_it_breaks(invoices, peppol_dir, clerk, name,
                                                            edits, rule):
    resp = post(invoices, edit_ubl(peppol_dir / name, edits), "application/xml", clerk)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert rule in {e["rule"] for e in resp.json()["errors"]}
    assert all(e["path"].startswith("/Invoice") for e in resp.json()["errors"])
