"""Property tests of the engine: deterministic, and never accepts beyond the ordered quantity."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain import Outcome, Rule, inputs_from_json, inputs_to_json
from services.matching.engine import match
from tests.unit.matching.factories import inputs, inv_line, invoice, po_line, policy, purchase_order

quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(50), places=4)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2)
deltas = st.decimals(min_value=Decimal(-3), max_value=Decimal(8), places=2)
pcts = st.decimals(min_value=Decimal(0), max_value=Decimal(20), places=2)


@st.composite
def cases(draw):
    n_po = draw(st.integers(1, 4))
    po = purchase_order(*[
        po_line(i, qty=str(draw(quantities) + 5), price=str(draw(prices)),
                three_way=draw(st.booleans()), description=f"item {i}")
        for i in range(1, n_po + 1)])
    lines = []
    for j in range(1, draw(st.integers(1, 5)) + 1):
        target = draw(st.integers(1, n_po + 1) if draw(st.booleans()) else st.integers(1, n_po))
        base = po.by_no[str(target)].unit_price if target <= n_po else Decimal(10)
        price = max(base + draw(deltas), Decimal("0.01"))
        lines.append(inv_line(str(target), qty=str(draw(quantities) / 4), price=str(price),
                              no=str(j)))  # target n_po + 1 is not on the PO
    inv = invoice(*lines, currency=draw(st.sampled_from(["EUR", "EUR", "EUR", "USD"])))
    received = {i: str(draw(quantities) * 2) for i in range(1, n_po + 1)
                if draw(st.sampled_from([True, True, True, False]))}
    prior = {i: str(draw(quantities) / 4) for i in range(1, n_po + 1) if draw(st.booleans())}
    pol = policy(price_pct=str(draw(pcts)), price_abs=str(draw(pcts)),
                 price_rule=draw(st.sampled_from(["either", "both"])),
                 qty_over_ordered_pct=str(draw(pcts)), qty_over_received_pct=str(draw(pcts)),
                 total_abs=str(draw(pcts) * 100))
    return inputs(inv, po, received=received, prior=prior), pol


@settings(max_examples=300, deadline=None)
@given(cases())
def test_a_decision_is_deterministic_and_replayable(case):
    inp, pol = case
    first = match(inp, pol, 1)
    again = match(inp, pol, 1)
    replayed = match(inputs_from_json(inputs_to_json(inp)), pol, 1)
    assert first.outcome == again.outcome == replayed.outcome
    assert first.checks_json() == again.checks_json() == replayed.checks_json()


@settings(max_examples=300, deadline=None)
@given(cases())
def test_no_accepted_invoice_exceeds_the_ordered_quantity_beyond_tolerance(case):
    inp, pol = case
    decision = match(inp, pol, 1)
    if decision.outcome != Outcome.MATCHED:
        assert any(not c.passed for c in decision.checks)
        return
    po = inp.po
    totals: dict[int, Decimal] = {}
    for line_no, po_line_no, index in decision.pairings:
        assert inp.invoice.lines[index].line_no == line_no
        qty = inp.invoice.lines[index].quantity
        totals[po_line_no] = totals.get(po_line_no, Decimal(0)) + qty
    for po_line_no, qty in totals.items():
        pl = po.by_no[str(po_line_no)]
        prior = inp.prior[po_line_no].quantity if po_line_no in inp.prior else Decimal(0)
        allowed = pl.quantity * (1 + pol.for_line(po.supplier_id, pl.category).qty_over_ordered_pct / 100)
        assert prior + qty <= allowed + Decimal("0.0001")
    assert len(decision.pairings) == len(inp.invoice.lines)
    assert all(c.passed for c in decision.checks if c.rule == Rule.LINE_NOT_ON_PO)
