"""The demo plan is a pure function of (world, N, seed): same seed → same plan."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from shared.cli.demo import scenario as sc
from shared.cli.demo.world import world_from_documents

MONTH = date(2026, 10, 1)


def _ordered(plan: sc.Plan) -> list[sc.RequisitionPlan]:
    return [r for r in plan.requisitions if r.approval in (sc.AUTO, sc.APPROVE, sc.CHANGES)]


def test_same_seed_gives_the_same_plan(world):
    a = sc.build_plan(world, 40, seed=7, month_start=MONTH)
    b = sc.build_plan(world, 40, seed=7, month_start=MONTH)
    assert a == b
    assert a.fingerprint() == b.fingerprint()


def test_different_seeds_give_different_plans(world):
    plans = {seed: sc.build_plan(world, 40, seed=seed, month_start=MONTH) for seed in (1, 2, 3)}
    assert len({p.fingerprint() for p in plans.values()}) == 3
    assert plans[1].requisitions != plans[2].requisitions
    # Not just cosmetics: the amounts differ.
    assert [r.total for r in plans[1].requisitions] != [r.total for r in plans[2].requisitions]


def test_the_plan_does_not_depend_on_global_randomness(world):
    import random

    random.seed(1)
    a = sc.build_plan(world, 20, seed=11, month_start=MONTH)
    random.seed(2)
    b = sc.build_plan(world, 20, seed=11, month_start=MONTH)
    assert a == b


@pytest.mark.parametrize("seed", [1, 7, 42, 1234])
def test_a_default_month_shows_every_format_and_every_kind_of_fault(world, seed):
    plan = sc.build_plan(world, 40, seed=seed, month_start=MONTH)
    pos = [po for r in _ordered(plan) for po in r.pos]
    assert {po.invoice.format for po in pos} == set(sc.FORMATS)
    faults = Counter(po.invoice.fault for po in pos)
    for fault in (sc.PRICE_OUTSIDE, sc.OVER_BILLED, sc.SUSPECT_DUP, sc.EXACT_DUP):
        assert faults[fault] >= 1, (fault, faults)
    assert faults[sc.WRONG_PO] + faults[sc.NO_PO] >= 1
    # Clean invoices stay the majority, as in a healthy AP department.
    assert faults[sc.CLEAN] + faults[sc.PRICE_WITHIN] > len(pos) / 2
    approvals = Counter(r.approval for r in plan.requisitions)
    for outcome in (sc.APPROVE, sc.REJECT, sc.CHANGES, sc.CANCEL, sc.AUTO):
        assert approvals[outcome] >= 1, (outcome, approvals)
    # Most requisitions end up ordered.
    assert len(_ordered(plan)) > len(plan.requisitions) * 0.6
    receipts = Counter(po.receipt for po in pos)
    assert receipts[sc.FULL] >= 1 and receipts[sc.LATE] + receipts[sc.PARTIAL_THEN_REST] >= 1


def test_requisitions_are_realistic(world):
    plan = sc.build_plan(world, 60, seed=5, month_start=MONTH)
    suppliers = {s.id: s for s in world.suppliers}
    requesters = {r.requester for r in plan.requisitions}
    # Staff raise requisitions; the directory comes from the policy, not from the code.
    assert requesters <= {"alice", "liam", "pete", "maya", "noah", "olga"}
    assert len(requesters) >= 3
    assert len({r.currency for r in plan.requisitions}) >= 3
    assert len({line.category for r in plan.requisitions for line in r.lines}) >= 4
    assert any(len(r.pos) > 1 for r in plan.requisitions), "some requisitions span suppliers"
    for r in plan.requisitions:
        assert r.cost_center in {c.id for c in world.cost_centers}
        assert 1 <= len(r.lines)
        for line in r.lines:
            assert suppliers[line.supplier_id].currency == r.currency
            assert line.quantity > 0 and line.unit_price > 0
            assert line.unit_price == line.unit_price.quantize(Decimal("0.01"))
        assert {po.supplier_id for po in r.pos} == {line.supplier_id for line in r.lines}
        assert (r.approval == sc.AUTO) == (not r.expected_chain)
    totals = sorted(world.to_base(r.total, r.currency) for r in plan.requisitions)
    # Log-normal: mostly modest amounts with a long tail.
    assert totals[len(totals) // 2] < totals[-1] / 4


def test_wrong_po_quotes_another_suppliers_ordered_requisition(world):
    for seed in range(1, 30):
        plan = sc.build_plan(world, 40, seed=seed, month_start=MONTH)
        for r in plan.requisitions:
            for po in r.pos:
                if po.invoice.fault != sc.WRONG_PO:
                    continue
                other = plan.requisitions[po.invoice.wrong_po_from]
                assert other.index < r.index
                assert other.approval in (sc.AUTO, sc.APPROVE, sc.CHANGES)
                assert po.supplier_id not in {p.supplier_id for p in other.pos}


def test_price_drift_is_inside_or_outside_the_tolerance_that_applies(world):
    plan = sc.build_plan(world, 80, seed=3, month_start=MONTH)
    seen = Counter()
    for r in plan.requisitions:
        for po in r.pos:
            fault = po.invoice.fault
            if fault not in (sc.PRICE_WITHIN, sc.PRICE_OUTSIDE):
                continue
            first = next(line for line in r.lines if line.supplier_id == po.supplier_id)
            tol = world.tolerances.for_line(po.supplier_id, first.category)
            increase = first.unit_price * po.invoice.price_factor - first.unit_price
            allowed = tol.max_price_increase(first.unit_price)
            assert (increase <= allowed) == (fault == sc.PRICE_WITHIN), (fault, increase, allowed)
            seen[fault] += 1
    assert seen[sc.PRICE_WITHIN] and seen[sc.PRICE_OUTSIDE]


def test_tolerance_scopes_resolve_category_over_supplier_over_default(world):
    acme_office = world.tolerances.for_line("SUP-ACME", "OFFICE")
    assert acme_office.price_pct == Decimal("5")
    acme_it = world.tolerances.for_line("SUP-ACME", "IT")
    assert acme_it.price_abs == Decimal("0.00") and acme_it.price_pct == Decimal("5")
    other = world.tolerances.for_line("SUP-GLOBEX", "OFFICE")
    assert other.price_pct == Decimal("2") and other.price_abs == Decimal("5.00")
    assert other.max_price_increase(Decimal("100")) == Decimal("5.00")  # either: the larger
    both = other.merged({"price_rule": "both"})
    assert both.max_price_increase(Decimal("100")) == Decimal("2")


def test_delegation_goes_to_a_peer_of_the_first_cost_center_owner(world, small_world):
    plan = sc.build_plan(world, 5, seed=1, month_start=MONTH)
    assert plan.delegation == sc.Delegation("bob", "quinn")  # same manager, fewest rule duties
    small = sc.build_plan(small_world, 5, seed=1, month_start=MONTH)
    assert small.delegation == sc.Delegation("bob", "ivan")


def test_routing_estimate_follows_limits_managers_and_rules(world):
    assert world.chain_for("alice", "CC-100", Decimal("400"), set()) == []
    assert world.chain_for("alice", "CC-100", Decimal("4000"), set()) == ["bob"]
    assert world.chain_for("alice", "CC-100", Decimal("60000"), {"IT"}) == \
        ["bob", "carol", "dana", "ivan"]
    # Segregation of duties: bob's own requisition goes to his manager instead.
    assert world.chain_for("bob", "CC-100", Decimal("4000"), set()) == ["carol"]


def test_a_small_policy_and_a_single_requisition_work(small_world):
    plan = sc.build_plan(small_world, 1, seed=9, month_start=MONTH)
    assert len(plan.requisitions) == 1
    assert plan.requisitions[0].requester == "alice"
    with pytest.raises(ValueError):
        sc.build_plan(small_world, 0, seed=9)


def test_a_policy_without_users_is_refused():
    with pytest.raises(ValueError, match="no users"):
        world_from_documents({"cost_centers": [{"id": "X", "owner": "a"}]})


def test_suppliers_in_currencies_the_policy_cannot_convert_are_left_out():
    policy = {"base_currency": "EUR", "users": [{"id": "a", "manager": "b"}, {"id": "b"}],
              "cost_centers": [{"id": "CC", "owner": "b"}]}
    world = world_from_documents(policy)
    assert {s.currency for s in world.suppliers} == {"EUR"}
    plan = sc.build_plan(world, 10, seed=1, month_start=MONTH)
    assert {r.currency for r in plan.requisitions} == {"EUR"}
