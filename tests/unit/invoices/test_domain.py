"""Pure rules: invoice number normalisation, supplier identity, suspected duplicates, status."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.invoices import domain
from services.invoices.domain import (
    Candidate,
    Supplier,
    normalise_number,
    numbers_similar,
    status_after,
    supplier_keys,
    suspected_duplicate_of,
)


@pytest.mark.parametrize("variant", ["INV-001", "inv 001", "INV001", "Inv.1", " inv_0001 ",
                                     "INV/01"])
def test_number_variants_normalise_to_one_number(variant):
    assert normalise_number(variant) == "INV1"


@pytest.mark.parametrize(("a", "b"), [("INV-10", "INV-1"), ("2024-001", "2024-002"),
                                      ("A1", "B1"), ("INV-100", "INV-010")])
def test_different_numbers_stay_different(a, b):
    assert normalise_number(a) != normalise_number(b)


@given(st.text(max_size=40))
def test_normalising_is_idempotent_and_upper_alphanumeric(number):
    once = normalise_number(number)
    assert normalise_number(once) == once
    assert once == once.upper()
    assert all(ch.isalnum() for ch in once)


def test_similar_numbers():
    assert numbers_similar(normalise_number("INV-2024-1001"), normalise_number("INV-2024-1007"))
    assert numbers_similar("INV1001", "1001")  # one inside the other
    assert not numbers_similar("INV1001", "CN77")
    assert not numbers_similar("", "INV1")


def test_suspected_duplicate_needs_a_similar_number_within_seven_days():
    day = date(2026, 11, 10)
    near = Candidate("a", normalise_number("INV-5501"), date(2026, 11, 4))
    far = Candidate("b", normalise_number("INV-5501"), date(2026, 11, 1))
    other = Candidate("c", normalise_number("CR-77"), day)
    assert suspected_duplicate_of(normalise_number("INV-5502"), day, [far, other, near]) == "a"
    assert suspected_duplicate_of(normalise_number("INV-5502"), day, [far, other]) is None


def test_supplier_keys_prefer_strong_identifiers():
    s = Supplier(id="SUP-1", vat_id="gb 123 4", peppol_id="0088:7300010000001",
                 identifiers=["99887766"], name="ACME")
    assert supplier_keys(s) == ["id:SUP-1", "peppol:0088:7300010000001", "vat:GB1234"]
    assert supplier_keys(Supplier(identifiers=["0088:1"], name="x")) == ["party:0088:1"]
    assert supplier_keys(Supplier(name="  ACME   Ltd ")) == ["name:acme ltd"]
    assert supplier_keys(Supplier()) == []


@pytest.mark.parametrize(("current", "event", "action", "expected"), [
    ("received", "matched", None, "matched"),
    ("received", "awaiting_receipt", None, "awaiting_receipt"),
    ("awaiting_receipt", "matched", None, "matched"),
    ("received", "exception_raised", None, "exception"),
    ("exception", "exception_resolved", "rematch", "matching"),
    ("exception", "exception_resolved", "request_credit_note", None),
    ("exception", "exception_resolved", "accept", None),
    ("exception", "cleared_for_payment", None, "cleared_for_payment"),
    ("matched", "cleared_for_payment", None, "cleared_for_payment"),
    ("exception", "rejected", None, "rejected"),
    ("cleared_for_payment", "exception_raised", None, None),  # terminal
    ("rejected", "matched", None, None),
    ("matched", "matched", None, None),
    ("received", "something_new", None, None),
])
def test_status_transitions(current, event, action, expected):
    assert status_after(current, event, action) == expected


def test_domain_and_validation_import_no_infrastructure():
    forbidden = {"fastapi", "sqlalchemy", "kafka", "temporalio", "starlette"}
    for module in (domain, __import__("services.invoices.validation", fromlist=["x"])):
        tree = ast.parse(Path(module.__file__).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in forbidden, (module.__name__, name)


@pytest.mark.parametrize(("current", "expected"), [("received", "matching"), ("matched", None),
                                                   ("exception", None), ("rejected", None)])
def test_the_hand_over_to_matching_never_overtakes_a_decision(current, expected):
    assert status_after(current, "published") == expected
