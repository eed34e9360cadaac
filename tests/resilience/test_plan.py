"""The load plan behind the resilience test: deterministic, varied, and free of accidental
exceptions (a clean invoice must clear touchlessly, a bad one must fail the price check)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.resilience.load import AUTO_APPROVE_BELOW, SUPPLIERS, invoice_body, make_plan, money

pytestmark = pytest.mark.resilience


def test_same_seed_same_plan_other_seed_other_plan():
    assert make_plan(7, 36, "R") == make_plan(7, 36, "R")
    assert make_plan(7, 36, "R") != make_plan(8, 36, "R")


def test_plan_mixes_every_path_and_the_expectation_adds_up():
    plan = make_plan(20261126, 36, "R")
    docs = plan.docs
    assert any(d.needs_approval for d in docs) and any(not d.needs_approval for d in docs)
    assert any(len(d.suppliers) == 2 for d in docs)
    assert any(d.bad_price for d in docs) and any(d.invoice_first for d in docs)
    assert all(not (d.bad_price & d.invoice_first) for d in docs)
    # Below the auto-approval threshold, or within the cost center owner's limit (5000 EUR).
    assert all(d.total < AUTO_APPROVE_BELOW or d.total <= Decimal(5000) for d in docs)
    exp = plan.expectation()
    n_pos = sum(len(d.suppliers) for d in docs)
    n_bad = sum(len(d.bad_price) for d in docs)
    assert exp.requisitions == {"received": len(docs)}
    assert exp.purchase_orders == {"received": n_pos}
    assert exp.invoices == {"cleared_for_payment": n_pos - n_bad, "exception": n_bad}
    assert exp.match_outcomes == {"matched": n_pos - n_bad, "exception": n_bad}
    assert exp.open_exceptions == n_bad
    assert sum(exp.approvals.values()) == len(docs)


def test_no_two_invoices_of_a_supplier_share_a_net_amount():
    # Same supplier + same gross + close dates = a suspected duplicate, i.e. an exception.
    plan = make_plan(20261126, 120, "R")
    nets = [(s, sum(ln.amount for ln in d.lines_of(s))) for d in plan.docs for s in d.suppliers]
    assert len(nets) == len(set(nets))


def _po(doc, supplier_id):  # the shape GET /purchase-orders answers
    return {"number": "PO-000001", "lines": [
        {"line_no": n, "description": ln.description, "uom": "EA",
         "unit_price": str(ln.unit_price), "ordered_quantity": str(ln.quantity)}
        for n, ln in enumerate(doc.lines_of(supplier_id), start=1)]}


def test_invoices_add_up_and_a_bad_price_is_outside_every_tolerance():
    plan = make_plan(20261126, 36, "R")
    suppliers = {s.id: s for s in SUPPLIERS}
    bad = next(d for d in plan.docs if d.bad_price)
    good = next(d for d in plan.docs if not d.bad_price)
    for doc in (bad, good):
        s = next(iter(doc.bad_price or doc.suppliers))
        body = invoice_body(doc, suppliers[s], _po(doc, s), "R")
        net = sum(Decimal(ln["net_amount"]) for ln in body["lines"])
        assert Decimal(body["totals"]["net"]) == net
        assert Decimal(body["totals"]["gross"]) == net + Decimal(body["totals"]["tax"])
        for ln, planned in zip(body["lines"], doc.lines_of(s), strict=True):
            assert Decimal(ln["net_amount"]) == money(Decimal(ln["quantity"]) *
                                                      Decimal(ln["unit_price"]))
            price, po_price = Decimal(ln["unit_price"]), planned.unit_price
            if doc is bad:  # above 2 % (5 % for some suppliers) and above 5.00 per unit
                assert price > po_price * Decimal("1.05") and price > po_price + 5
            else:
                assert price == po_price
