"""Policy validation: each broken document names the offending path and rule."""

from __future__ import annotations

import copy

import pytest

from services.approvals.policy import PolicyInvalid, parse_policy
from tests.unit.approvals.test_routing import BASE


def errors_of(mutate) -> list[tuple[str, str, str]]:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(doc)
    return err.value.errors


def paths(errors) -> set[tuple[str, str]]:
    return {(p, r) for p, r, _ in errors}


def test_the_base_policy_is_valid_and_round_trips():
    pol = parse_policy(copy.deepcopy(BASE))
    assert parse_policy(pol.document()) == pol
    assert pol.document()["auto_approve_below"] == "500.00"
    assert pol.sla.escalation.total_seconds() == 48 * 3600


def test_unknown_manager_is_reported_at_its_path():
    errs = errors_of(lambda d: d["users"][0].__setitem__("manager", "zed"))
    assert ("users[0].manager", "unknown_user") in paths(errs)


def test_manager_cycle_is_reported():
    def cycle(d):
        d["users"][3]["manager"] = "bob"  # dana -> bob -> carol -> dana
    errs = errors_of(cycle)
    assert any(r == "manager_cycle" for _, r, _ in errs)
    assert any("bob" in m and "carol" in m and "dana" in m for _, _, m in errs)


def test_self_management_is_a_cycle():
    errs = errors_of(lambda d: d["users"][3].__setitem__("manager", "dana"))
    assert ("users[3].manager", "manager_cycle") in paths(errs)


def test_unknown_cost_center_owner_and_rule_approver():
    def broken(d):
        d["cost_centers"][0]["owner"] = "ghost"
        d["rules"][1]["approvers"] = ["dana", "nobody"]
    assert {("cost_centers[0].owner", "unknown_user"),
            ("rules[1].approvers[1]", "unknown_user")} <= paths(errors_of(broken))


def test_duplicate_user_ids():
    errs = errors_of(lambda d: d["users"].append({"id": "bob", "name": "Bob Two"}))
    assert ("users[6].id", "duplicate") in paths(errs)


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda d: d.__setitem__("auto_approve_below", "lots"), "auto_approve_below"),
    (lambda d: d.__setitem__("auto_approve_below", 500.5), "auto_approve_below"),
    (lambda d: d["users"][1].__setitem__("approval_limit", "-1"), "users[1].approval_limit"),
    (lambda d: d["sla"].__setitem__("reminder_after", "tomorrow"), "sla.reminder_after"),
    (lambda d: d["fx_rates"].__setitem__("usd", "1"), "fx_rates"),
    (lambda d: d.__setitem__("base_currency", "Euro"), "base_currency"),
    (lambda d: d["rules"][0].__setitem__("mode", "some"), "rules[0].mode"),
    (lambda d: d["rules"][0]["when"].__setitem__("colour", "red"), "rules[0].when.colour"),
    (lambda d: d.__delitem__("users"), "users"),
    (lambda d: d["users"][2].__delitem__("name"), "users[2].name"),
])
def test_schema_errors_carry_the_path(mutate, path):
    assert path in {p for p, _, _ in errors_of(mutate)}


def test_control_characters_are_refused_at_their_path():
    errs = errors_of(lambda d: d["users"][2].__setitem__("name", "Ca\x00rol"))
    assert ("users[2].name", "invalid_text") in paths(errs)
    errs = errors_of(lambda d: d["users"][1].__setitem__("manager", "a\ud800b"))
    assert ("users[1].manager", "invalid_text") in paths(errs)
    errs = errors_of(lambda d: d["fx_rates"].__setitem__("\ud800", "1"))
    assert ("fx_rates.<invalid key>", "invalid_text") in paths(errs)


def test_a_document_that_is_not_a_mapping():
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(["not", "a", "policy"])
    assert err.value.errors[0][0] == "$"
