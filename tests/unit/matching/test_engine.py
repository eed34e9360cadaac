"""The matching engine: every rule at, just inside and just outside its tolerance."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.matching.domain import (
    Outcome,
    Rule,
    accepted_variance,
    inputs_from_json,
    inputs_to_json,
)
from services.matching.engine import match
from tests.unit.matching.factories import (
    NOW,
    D,
    inputs,
    inv_line,
    invoice,
    later,
    po_line,
    policy,
    purchase_order,
)

STANDARD = policy()


def decide(inp, pol=STANDARD):
    return match(inp, pol, 7)


def check(decision, rule, line_no=None):
    found = [c for c in decision.checks if c.rule == rule and (line_no is None or c.line_no == line_no)]
    assert found, f"no {rule} check in {decision.checks}"
    return found[-1]


def test_a_clean_three_way_invoice_is_matched_with_every_check_recorded():
    d = decide(inputs(invoice(), purchase_order()))
    assert d.outcome == Outcome.MATCHED and d.policy_version == 7
    assert [c.rule for c in d.checks] == [
        Rule.PO_NOT_FOUND, Rule.SUPPLIER_MISMATCH, Rule.CURRENCY_MISMATCH, Rule.PO_CLOSED,
        Rule.DUPLICATE_SUSPECTED, Rule.LINE_NOT_ON_PO, Rule.PRICE_VARIANCE,
        Rule.QTY_OVER_ORDERED, Rule.QTY_OVER_RECEIVED, Rule.TOTAL_VARIANCE]
    assert all(c.passed for c in d.checks)
    price = check(d, Rule.PRICE_VARIANCE).to_json()
    assert price | {"detail": None} == {
        "rule": "PRICE_VARIANCE", "line_no": "1", "po_line_no": 1, "expected": "100.00",
        "actual": "100.00", "tolerance": "5.00", "variance": "0.00", "passed": True, "detail": None}


# -- PRICE_VARIANCE -------------------------------------------------------------------------

@pytest.mark.parametrize(("price", "passed"), [
    ("105.00", True),     # at the absolute limit (5.00 > 2 % of 100)
    ("104.9999", True),   # just inside
    ("105.0001", False),  # just outside
])
def test_price_either_rule_uses_the_larger_limit(price, passed):
    d = decide(inputs(invoice(inv_line(price=price)), purchase_order()))
    c = check(d, Rule.PRICE_VARIANCE)
    assert (c.passed, c.tolerance, c.variance) == (passed, D("5.00"), D(price) - D("100.00"))
    assert d.outcome == (Outcome.MATCHED if passed else Outcome.EXCEPTION)


@pytest.mark.parametrize(("price", "passed"), [("1020.00", True), ("1019.99", True), ("1020.01", False)])
def test_price_either_rule_with_percentage_larger_than_absolute(price, passed):
    d = decide(inputs(invoice(inv_line(price=price)), purchase_order(po_line(price="1000.00"))))
    c = check(d, Rule.PRICE_VARIANCE)
    assert c.tolerance == D("20.0000") and c.passed is passed


@pytest.mark.parametrize(("price", "passed"), [("102.00", True), ("101.99", True), ("102.01", False),
                                               ("104.00", False)])
def test_price_both_rule_uses_the_smaller_limit(price, passed):
    pol = policy(price_rule="both")
    c = check(decide(inputs(invoice(inv_line(price=price)), purchase_order()), pol), Rule.PRICE_VARIANCE)
    assert c.tolerance == D("2.0000") and c.passed is passed


def test_a_price_below_the_po_price_passes_and_records_the_negative_variance():
    c = check(decide(inputs(invoice(inv_line(price="90.00")), purchase_order())), Rule.PRICE_VARIANCE)
    assert c.passed and c.variance == D("-10.00")


def test_zero_tolerances_accept_only_the_exact_price():
    pol = policy(price_pct="0", price_abs="0")
    assert check(decide(inputs(invoice(inv_line(price="100.00")), purchase_order()), pol),
                 Rule.PRICE_VARIANCE).passed
    assert not check(decide(inputs(invoice(inv_line(price="100.0001")), purchase_order()), pol),
                     Rule.PRICE_VARIANCE).passed


# -- scope precedence -----------------------------------------------------------------------

def test_category_overrides_supplier_which_overrides_default():
    pol = policy(price_abs="0", price_pct="2",
                 suppliers={"SUP-1": {"price_pct": "5"}}, categories={"IT": {"price_pct": "1"}})
    po = purchase_order(po_line(1, category="IT"), po_line(2, category="FURNITURE"))
    inv = invoice(inv_line("1", price="101.00", qty="1", no="1"),
                  inv_line("2", price="105.00", qty="1", no="2"))
    d = decide(inputs(inv, po, received={1: "1", 2: "1"}), pol)
    assert check(d, Rule.PRICE_VARIANCE, "1").tolerance == D("1.0000")  # category
    assert check(d, Rule.PRICE_VARIANCE, "2").tolerance == D("5.0000")  # supplier
    assert d.outcome == Outcome.MATCHED
    other = purchase_order(po_line(1, category="FURNITURE"), supplier_id="SUP-2", vat_id=None,
                           peppol_id=None)
    d2 = decide(inputs(invoice(inv_line(price="102.01"), supplier_id="SUP-2"), other), pol)
    assert check(d2, Rule.PRICE_VARIANCE).tolerance == D("2.0000")  # default
    assert not check(d2, Rule.PRICE_VARIANCE).passed


def test_a_category_override_keeps_the_fields_it_does_not_name():
    pol = policy(categories={"IT": {"price_abs": "0.00"}})
    tol = pol.for_line("SUP-1", "IT")
    assert (tol.price_abs, tol.price_pct, tol.total_abs) == (D("0.00"), D("2"), D("1.00"))


# -- quantities -----------------------------------------------------------------------------

@pytest.mark.parametrize(("qty", "passed"), [("11", True), ("10.9999", True), ("11.0001", False)])
def test_qty_over_ordered_at_inside_and_outside_tolerance(qty, passed):
    pol = policy(qty_over_ordered_pct="10", qty_over_received_pct="100")
    d = decide(inputs(invoice(inv_line(qty=qty), net=str(D(qty) * 100)), purchase_order(),
                      received={1: "10"}), pol)
    c = check(d, Rule.QTY_OVER_ORDERED)
    assert (c.passed, c.expected, c.actual, c.tolerance) == (passed, D(10), D(qty), D("1.0000"))


def test_qty_over_ordered_counts_what_other_invoices_already_invoiced():
    d = decide(inputs(invoice(inv_line(qty="4"), net="400.00"), purchase_order(),
                      received={1: "10"}, prior={1: "7"}))
    c = check(d, Rule.QTY_OVER_ORDERED)
    assert (c.actual, c.variance, c.passed) == (D(11), D(1), False)
    assert d.outcome == Outcome.EXCEPTION and d.reasons == [Rule.QTY_OVER_ORDERED, Rule.QTY_OVER_RECEIVED]


def test_two_lines_of_one_invoice_on_the_same_po_line_accumulate():
    inv = invoice(inv_line("1", qty="6", no="1"), inv_line("1", qty="5", no="2"))
    d = decide(inputs(inv, purchase_order(), received={1: "11"}))
    assert check(d, Rule.QTY_OVER_ORDERED, "1").passed
    second = check(d, Rule.QTY_OVER_ORDERED, "2")
    assert (second.actual, second.passed) == (D(11), False)


@pytest.mark.parametrize(("received", "outcome"), [("10", Outcome.MATCHED), ("9.5", Outcome.MATCHED),
                                                   ("9.4", Outcome.AWAITING_RECEIPT)])
def test_qty_over_received_tolerance(received, outcome):
    pol = policy(qty_over_received_pct="5.3")  # 9.5 × 5.3 % = 0.5035 ≥ 0.5
    d = decide(inputs(invoice(), purchase_order(), received={1: received}), pol)
    assert d.outcome == outcome


def test_two_way_lines_need_no_receipt():
    po = purchase_order(po_line(three_way=False, description="Consulting day"))
    d = decide(inputs(invoice(), po, received={}))
    assert d.outcome == Outcome.MATCHED
    assert Rule.QTY_OVER_RECEIVED not in {c.rule for c in d.checks}


def test_short_only_of_receipts_waits_then_becomes_missing_receipt():
    po = purchase_order()
    d = decide(inputs(invoice(), po, received={1: "4"}))
    assert d.outcome == Outcome.AWAITING_RECEIPT and d.awaiting_lines == ("1",)
    assert d.wait_until == later(days=5)
    missing = check(d, Rule.MISSING_RECEIPT)
    assert missing.passed and missing.tolerance == "P5D"
    still = decide(inputs(invoice(), po, received={1: "4"}, now=later(days=4, hours=23),
                          awaiting_since=NOW))
    assert still.outcome == Outcome.AWAITING_RECEIPT
    late = decide(inputs(invoice(), po, received={1: "4"}, now=later(days=5), awaiting_since=NOW))
    assert late.outcome == Outcome.EXCEPTION
    assert late.reasons == [Rule.MISSING_RECEIPT]
    assert not check(late, Rule.QTY_OVER_RECEIVED).passed  # still recorded as failed


def test_short_of_receipts_and_another_failure_is_an_exception_at_once():
    d = decide(inputs(invoice(inv_line(price="150.00")), purchase_order(), received={1: "4"}))
    assert d.outcome == Outcome.EXCEPTION
    assert d.reasons == [Rule.PRICE_VARIANCE, Rule.QTY_OVER_RECEIVED]
    assert Rule.MISSING_RECEIPT not in {c.rule for c in d.checks}


def test_partial_receipts_over_several_invoices():
    po = purchase_order()
    first = decide(inputs(invoice(inv_line(qty="4"), invoice_id="a"), po, received={1: "4"}))
    assert first.outcome == Outcome.MATCHED
    second_in = invoice(inv_line(qty="6"), invoice_id="b")
    waiting = decide(inputs(second_in, po, received={1: "8"}, prior={1: "4"}))
    assert waiting.outcome == Outcome.AWAITING_RECEIPT
    assert check(waiting, Rule.QTY_OVER_RECEIVED).actual == D(10)
    done = decide(inputs(second_in, po, received={1: "10"}, prior={1: "4"}, awaiting_since=NOW,
                         now=later(hours=3)))
    assert done.outcome == Outcome.MATCHED
    third = decide(inputs(invoice(inv_line(qty="1"), invoice_id="c"), po, received={1: "10"},
                          prior={1: "10"}))
    assert third.outcome == Outcome.EXCEPTION and Rule.QTY_OVER_ORDERED in third.reasons


def test_a_credit_note_reduces_the_cumulative_invoiced_quantity():
    po = purchase_order()
    # 10 invoiced, 3 credited (prior = 10 − 3 = 7): 3 more fit the order again
    d = decide(inputs(invoice(inv_line(qty="3"), invoice_id="next"), po, received={1: "10"},
                      prior={1: "7"}))
    assert d.outcome == Outcome.MATCHED and check(d, Rule.QTY_OVER_ORDERED).actual == D(10)


def test_a_credit_note_is_checked_on_header_and_pairing_only():
    credit = invoice(inv_line(qty="3"), type_="credit_note", invoice_id="cn")
    d = decide(inputs(credit, purchase_order(), received={}))
    assert d.outcome == Outcome.MATCHED and d.pairings == (("1", 1, 0),)
    assert {c.rule for c in d.checks} == {Rule.PO_NOT_FOUND, Rule.SUPPLIER_MISMATCH,
                                          Rule.CURRENCY_MISMATCH, Rule.PO_CLOSED,
                                          Rule.DUPLICATE_SUSPECTED, Rule.LINE_NOT_ON_PO}
    wrong = decide(inputs(invoice(inv_line(qty="3"), type_="credit_note", currency="USD"),
                          purchase_order()))
    assert wrong.outcome == Outcome.EXCEPTION and wrong.reasons == [Rule.CURRENCY_MISMATCH]


# -- header rules ---------------------------------------------------------------------------

def test_no_order_reference_is_po_not_found_at_once():
    d = decide(inputs(invoice(ref=None), None))
    assert d.outcome == Outcome.EXCEPTION and d.reasons == [Rule.PO_NOT_FOUND]


def test_an_unknown_order_reference_waits_po_wait_then_fails():
    pol = policy(po_wait="PT1H")
    waiting = decide(inputs(invoice(), None, now=later(minutes=59)), pol)
    assert waiting.outcome == Outcome.AWAITING_PO and waiting.wait_until == later(hours=1)
    late = decide(inputs(invoice(), None, now=later(hours=1)), pol)
    assert late.outcome == Outcome.EXCEPTION and late.reasons == [Rule.PO_NOT_FOUND]


@pytest.mark.parametrize("supplier", [
    {"supplier_id": "SUP-1"},
    {"supplier_id": None, "vat_id": "de 123-456-789"},
    {"supplier_id": None, "peppol_id": "0088:4000001000005"},
])
def test_the_supplier_matches_by_any_identifier(supplier):
    d = decide(inputs(invoice(**supplier), purchase_order()))
    assert check(d, Rule.SUPPLIER_MISMATCH).passed and d.outcome == Outcome.MATCHED


def test_another_supplier_is_a_mismatch():
    d = decide(inputs(invoice(supplier_id="SUP-9", vat_id="FR999"), purchase_order()))
    c = check(d, Rule.SUPPLIER_MISMATCH)
    assert not c.passed and (c.expected, c.actual) == ("SUP-1", "SUP-9")
    assert d.reasons == [Rule.SUPPLIER_MISMATCH]


def test_currency_mismatch():
    d = decide(inputs(invoice(currency="USD"), purchase_order()))
    c = check(d, Rule.CURRENCY_MISMATCH)
    assert (c.passed, c.expected, c.actual) == (False, "EUR", "USD")
    assert d.outcome == Outcome.EXCEPTION


def test_a_cancelled_po_is_closed_but_a_fully_received_one_takes_its_invoice():
    cancelled = decide(inputs(invoice(), purchase_order(status="closed", closed_reason="cancelled")))
    assert cancelled.reasons == [Rule.PO_CLOSED]
    received = decide(inputs(invoice(), purchase_order(status="closed", closed_reason="received")))
    assert received.outcome == Outcome.MATCHED


def test_suspected_duplicate_is_an_exception():
    d = decide(inputs(invoice(flags=("suspected_duplicate",)), purchase_order()))
    assert d.reasons == [Rule.DUPLICATE_SUSPECTED]


def test_a_po_line_number_not_on_the_po():
    d = decide(inputs(invoice(inv_line("9")), purchase_order()))
    assert Rule.LINE_NOT_ON_PO in d.reasons and not check(d, Rule.LINE_NOT_ON_PO).passed


@pytest.mark.parametrize(("extra", "passed"), [("1.00", True), ("0.99", True), ("1.01", False),
                                               ("-50.00", True)])
def test_total_variance_caps_the_header_against_the_matched_lines(extra, passed):
    d = decide(inputs(invoice(net=str(D("1000.00") + D(extra))), purchase_order()))
    c = check(d, Rule.TOTAL_VARIANCE)
    assert (c.expected, c.variance, c.passed) == (D("1000.00"), D(extra), passed)


# -- pairing --------------------------------------------------------------------------------

def test_lines_without_po_line_no_pair_by_description_with_the_score():
    po = purchase_order(po_line(1, description="Laptop 14 inch", price="100.00"),
                        po_line(2, description="USB-C docking station", price="200.00"))
    inv = invoice(inv_line(None, price="200.00", qty="1", description="Docking station USB-C", no="A"))
    d = decide(inputs(inv, po, received={2: "1"}))
    c = check(d, Rule.LINE_NOT_ON_PO)
    assert c.passed and c.po_line_no == 2
    assert c.detail["pairing"] == "description" and c.detail["score"] >= 70
    assert d.outcome == Outcome.MATCHED


def test_an_unrelated_description_is_not_on_the_po():
    inv = invoice(inv_line(None, description="Espresso machine"))
    d = decide(inputs(inv, purchase_order()))
    c = check(d, Rule.LINE_NOT_ON_PO)
    assert not c.passed and c.detail["score"] < 70
    assert d.outcome == Outcome.EXCEPTION


# -- explainability -------------------------------------------------------------------------

def test_accepted_variance_is_price_excess_times_quantity_plus_header_excess():
    d = decide(inputs(invoice(inv_line(price="104.00"), net="1040.50"), purchase_order()))
    assert d.outcome == Outcome.MATCHED and d.accepted_variance == D("40.50")
    assert accepted_variance(d.checks_json()) == D("40.50")


def test_inputs_survive_a_json_round_trip_and_replay_to_the_same_decision():
    inp = inputs(invoice(inv_line("1", qty="3"), inv_line(None, qty="2", no="2")), purchase_order(),
                 received={1: "4"}, prior={1: "1"}, awaiting_since=NOW)
    again = inputs_from_json(inputs_to_json(inp))
    assert decide(again).checks_json() == decide(inp).checks_json()
    assert decide(again).outcome == decide(inp).outcome


def test_variance_is_exact_decimal():
    d = decide(inputs(invoice(inv_line(price="100.0001")), purchase_order()))
    assert check(d, Rule.PRICE_VARIANCE).variance == Decimal("0.0001")


def test_pairings_keep_lines_that_share_a_line_number_apart():
    inv = invoice(inv_line("1", qty="2", no="1"), inv_line(None, qty="3", no="1"),
                  inv_line("7", qty="1", no="2"))
    d = decide(inputs(inv, purchase_order()))
    assert d.pairings == (("1", 1, 0), ("1", 1, 1))
