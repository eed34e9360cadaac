"""Routing invariants over generated org charts, amounts and requesters (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.approvals.domain import RoutingRequest, route
from services.approvals.policy import parse_policy


@st.composite
def org_and_request(draw):
    n = draw(st.integers(min_value=2, max_value=12))
    users = []
    for i in range(n):
        # Managers always have a lower index: a forest, never a cycle.
        manager = None if i == 0 else f"u{draw(st.integers(min_value=0, max_value=i - 1))}"
        limit = draw(st.none() | st.integers(min_value=0, max_value=100_000))
        user = {"id": f"u{i}", "name": f"User {i}"}
        if manager and draw(st.booleans()):  # some users have no manager: a forest
            user["manager"] = manager
        if limit is not None:
            user["approval_limit"] = str(limit)
        users.append(user)
    ids = [u["id"] for u in users]
    rules = [{"name": f"r{k}", "when": {"category": draw(st.sampled_from(["IT", "HR", "OPS"]))},
              "approvers": draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3)),
              "mode": draw(st.sampled_from(["all", "any"]))}
             for k in range(draw(st.integers(min_value=0, max_value=3)))]
    policy = parse_policy({
        "base_currency": "EUR", "fx_rates": {"USD": "0.92"}, "auto_approve_below": "100",
        "users": users, "cost_centers": [{"id": "CC", "name": "CC", "owner": draw(st.sampled_from(ids))}],
        "rules": rules,
    })
    request = RoutingRequest(
        requester=draw(st.sampled_from([*ids, "outsider"])), cost_center="CC",
        currency=draw(st.sampled_from(["EUR", "USD"])),
        total=Decimal(draw(st.integers(min_value=0, max_value=200_000))),
        categories=frozenset(draw(st.lists(st.sampled_from(["IT", "HR", "OPS"]), max_size=2))))
    return policy, request


@settings(max_examples=300, deadline=None)
@given(org_and_request())
def test_chains_respect_segregation_of_duties_and_limits(case):
    policy, req = case
    try:
        chain = route(req, policy)
    except ValueError as exc:  # only when nobody but the requester could approve
        assert "nobody" in str(exc)
        return
    rate = Decimal(1) if req.currency == "EUR" else Decimal("0.92")
    assert chain.amount_base == req.total * rate
    if chain.amount_base < Decimal(100):
        assert chain.auto_approved and chain.steps == ()
        return
    people = [a for s in chain.steps for a in s.approvers]
    assert req.requester not in people  # never approves their own requisition
    assert len(people) == len(set(people))  # nobody twice
    assert [s.level for s in chain.steps] == list(range(1, len(chain.steps) + 1))
    assert all(s.approvers for s in chain.steps)
    hierarchy = [s for s in chain.steps if not s.reason.startswith("rule:")]
    managers = policy.managers()
    # The manager chain stops at the first approver whose limit covers the amount: everyone
    # before the last one is below it, and the last one covers it unless nobody is above.
    for step in hierarchy[:-1]:
        limit = policy.user(step.approvers[0]).approval_limit
        assert limit is not None and limit < chain.amount_base
    if hierarchy:
        last = hierarchy[-1].approvers[0]
        limit = policy.user(last).approval_limit
        above = managers.get(last)
        assert (limit is None or limit >= chain.amount_base or above is None
                or above == req.requester and managers.get(above) is None
                or above in people)
