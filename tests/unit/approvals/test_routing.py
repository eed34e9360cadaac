"""Routing of §4.2 as a pure function: thresholds, FX, manager chain, SoD, rules, auto-approve."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from services.approvals.domain import (
    RoutingError,
    RoutingRequest,
    escalation_target,
    route,
    workflow_id_for,
)
from services.approvals.policy import parse_policy

DEMO = Path(__file__).resolve().parents[3] / "deploy" / "approval-policy.yaml"

BASE = {
    "base_currency": "EUR",
    "fx_rates": {"USD": "0.92", "GBP": "1.17", "SEK": "0.087", "NOK": "0.085"},
    "auto_approve_below": "500.00",
    "sla": {"reminder_after": "PT24H", "escalate_after": "PT48H"},
    "users": [
        {"id": "alice", "name": "Alice", "manager": "bob"},
        {"id": "bob", "name": "Bob", "manager": "carol", "approval_limit": "5000.00"},
        {"id": "carol", "name": "Carol", "manager": "dana", "approval_limit": "50000.00"},
        {"id": "dana", "name": "Dana"},
        {"id": "ivan", "name": "Ivan", "manager": "carol", "approval_limit": "5000.00"},
        {"id": "quinn", "name": "Quinn", "manager": "carol", "approval_limit": "5000.00"},
    ],
    "cost_centers": [{"id": "CC-100", "name": "Engineering", "owner": "bob"},
                     {"id": "CC-900", "name": "Board", "owner": "carol"}],
    "rules": [
        {"name": "it-review", "when": {"category": "IT"}, "approvers": ["ivan"], "mode": "all"},
        {"name": "big-spend", "when": {"min_amount": "100000.00"}, "approvers": ["dana"],
         "mode": "any"},
    ],
}


def policy(**changes):
    return parse_policy({**BASE, **changes})


def chain(amount: str, *, requester: str = "alice", currency: str = "EUR", cc: str = "CC-100",
          categories: tuple[str, ...] = (), pol=None):
    result = route(RoutingRequest(requester, cc, currency, Decimal(amount), frozenset(categories)),
                   pol or policy())
    return [(s.mode, list(s.approvers)) for s in result.steps], result


def test_below_threshold_is_auto_approved_without_steps():
    steps, result = chain("499.99")
    assert result.auto_approved and steps == []


def test_at_threshold_needs_the_cost_center_owner():
    steps, result = chain("500.00")
    assert not result.auto_approved
    assert steps == [("all", ["bob"])]


def test_owner_within_limit_is_the_only_level():
    assert chain("5000.00")[0] == [("all", ["bob"])]


def test_manager_chain_climbs_until_a_limit_covers_the_amount():
    assert chain("5000.01")[0] == [("all", ["bob"]), ("all", ["carol"])]
    assert chain("60000")[0] == [("all", ["bob"]), ("all", ["carol"]), ("all", ["dana"])]


def test_amounts_are_converted_to_the_base_currency():
    # 540 USD = 496.80 EUR: below the threshold; 600 GBP = 702 EUR: not.
    assert chain("540", currency="USD")[1].auto_approved
    steps, result = chain("600", currency="GBP")
    assert result.amount_base == Decimal("702.00") and steps == [("all", ["bob"])]
    # 60 000 SEK = 5 220 EUR: above bob's limit.
    assert chain("60000", currency="SEK")[0] == [("all", ["bob"]), ("all", ["carol"])]


def test_a_currency_without_fx_rate_cannot_be_routed():
    with pytest.raises(RoutingError) as err:
        chain("1000", currency="JPY")
    assert err.value.path == "currency" and err.value.rule == "fx_rate_missing"


def test_an_unknown_cost_center_cannot_be_routed():
    with pytest.raises(RoutingError) as err:
        chain("1000", cc="CC-404")
    assert err.value.path == "cost_center"


def test_requester_never_approves_their_own_requisition():
    # bob owns CC-100: his place goes to his manager carol.
    assert chain("1000", requester="bob")[0] == [("all", ["carol"])]
    # carol requests above her limit: bob, then (carol ->) dana.
    assert chain("60000", requester="carol")[0] == [("all", ["bob"]), ("all", ["dana"])]


def test_requester_in_a_rule_is_replaced_by_their_manager_and_nobody_twice():
    # ivan requests an IT item: the it-review level would be ivan -> carol, already in chain.
    steps, _ = chain("6000", requester="ivan", categories=("IT",))
    assert steps == [("all", ["bob"]), ("all", ["carol"])]


def test_each_matching_rule_adds_a_level_in_file_order():
    steps, _ = chain("150000", categories=("IT", "Office"))
    assert steps == [("all", ["bob"]), ("all", ["carol"]), ("all", ["dana"]), ("all", ["ivan"])]
    # dana is already in the chain, so big-spend adds no level; non-IT adds no it-review.
    assert chain("1000", categories=("Office",))[0] == [("all", ["bob"])]


def test_parallel_rule_levels_keep_their_mode_and_drop_people_already_in_the_chain():
    pol = policy(rules=[{"name": "security", "when": {"category": "Software"},
                         "approvers": ["ivan", "quinn", "bob"], "mode": "any"}])
    steps, _ = chain("1000", categories=("Software",), pol=pol)
    assert steps == [("all", ["bob"]), ("any", ["ivan", "quinn"])]


def test_rule_conditions_on_amount_and_cost_center():
    pol = policy(rules=[{"name": "board", "when": {"cost_center": "CC-100", "min_amount": "1000",
                                                    "max_amount": "2000"},
                         "approvers": ["ivan"]}])
    assert chain("1500", pol=pol)[0] == [("all", ["bob"]), ("all", ["ivan"])]
    assert chain("999", pol=pol)[0] == [("all", ["bob"])]
    assert chain("2000", pol=pol)[0] == [("all", ["bob"])]


def test_escalation_goes_to_the_manager_but_never_the_requester():
    managers = policy().managers()
    assert escalation_target("bob", managers, "alice") == "carol"
    assert escalation_target("bob", managers, "carol") == "dana"
    assert escalation_target("dana", managers, "alice") is None


def test_workflow_ids_are_deterministic_per_submission():
    assert workflow_id_for("R-1", 1) == "requisition-approval-R-1"
    assert workflow_id_for("R-1", 3) == "requisition-approval-R-1-3"


def test_the_demo_policy_routes_three_level_chains():
    demo = parse_policy(yaml.safe_load(DEMO.read_text()))
    assert len(demo.users) >= 12 and len(demo.cost_centers) == 4
    assert {"USD", "GBP", "SEK", "NOK"} <= set(demo.fx_rates) and demo.base_currency == "EUR"
    for cc in demo.cost_centers:
        steps = route(RoutingRequest("nobody", cc.id, "EUR", Decimal(60000)), demo).steps
        assert len(steps) == 3, cc.id
    it = route(RoutingRequest("alice", "CC-100", "EUR", Decimal(800), frozenset({"IT"})), demo)
    assert [list(s.approvers) for s in it.steps] == [["bob"], ["ivan"]]
