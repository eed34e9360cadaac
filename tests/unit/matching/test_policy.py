"""Tolerance policy documents: validation with paths, defaults, the shipped file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from services.matching.domain import CaseConflict, ExceptionCase, SegregationOfDuties
from services.matching.policy import PolicyError, parse_policy

SHIPPED = Path(__file__).resolve().parents[3] / "deploy" / "tolerances.yaml"
GOOD = {"default": {"price_pct": "2", "price_abs": "5.00", "price_rule": "either",
                    "qty_over_ordered_pct": "0", "qty_over_received_pct": "0", "total_abs": "1.00"}}


def errors_of(doc) -> set[tuple[str, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    return {(path, rule) for path, rule, _ in info.value.errors}


def test_the_shipped_policy_is_the_documented_one():
    policy = parse_policy(yaml.safe_load(SHIPPED.read_text()))
    assert policy.receipt_wait == timedelta(days=5) and policy.po_wait == timedelta(hours=1)
    assert str(policy.for_line("SUP-ACME", None).price_pct) == "5"
    assert str(policy.for_line("SUP-ACME", "IT").price_abs) == "0.00"
    assert policy.document["default"]["price_rule"] == "either"


def test_waits_default_when_absent_and_numbers_normalise_to_strings():
    policy = parse_policy({"default": {**GOOD["default"], "price_pct": 2.5}})
    assert policy.receipt_wait == timedelta(days=5) and policy.po_wait == timedelta(hours=1)
    assert policy.document["default"]["price_pct"] == "2.5"
    assert policy.document["receipt_wait"] == "P5D"


@pytest.mark.parametrize(("doc", "expected"), [
    ([], {("", "type")}),
    ({}, {("default", "required")}),
    ({"default": {**GOOD["default"], "price_pct": "-1"}}, {("default.price_pct", "minimum")}),
    ({"default": {**GOOD["default"], "price_pct": "abc"}}, {("default.price_pct", "decimal")}),
    ({"default": {**GOOD["default"], "price_abs": True}}, {("default.price_abs", "decimal")}),
    ({"default": {**GOOD["default"], "price_rule": "any"}}, {("default.price_rule", "enum")}),
    ({"default": {k: v for k, v in GOOD["default"].items() if k != "total_abs"}},
     {("default.total_abs", "required")}),
    ({**GOOD, "suppliers": {"SUP-1": {"price_pcnt": "3"}}}, {("suppliers.SUP-1.price_pcnt", "unknown_field")}),
    ({**GOOD, "categories": {"IT": "strict"}}, {("categories.IT", "type")}),
    ({**GOOD, "categories": ["IT"]}, {("categories", "type")}),
    ({**GOOD, "receipt_wait": "5 days"}, {("receipt_wait", "duration")}),
    ({**GOOD, "po_wait": "PT0S"}, {("po_wait", "minimum")}),
    ({**GOOD, "po_wait": "P1M"}, {("po_wait", "duration")}),
    ({**GOOD, "surprise": 1}, {("surprise", "unknown_field")}),
])
def test_invalid_documents_name_the_path_and_rule(doc, expected):
    assert errors_of(doc) == expected


def test_every_problem_is_reported_at_once():
    found = errors_of({"default": {**GOOD["default"], "price_pct": "-1", "price_rule": "x"},
                       "po_wait": 3})
    assert found == {("default.price_pct", "minimum"), ("default.price_rule", "enum"),
                     ("po_wait", "duration")}


def test_exception_case_transitions():
    case = ExceptionCase("open", requester="alice")
    with pytest.raises(SegregationOfDuties):
        case.check_can_resolve("alice", "accept")
    case.check_can_resolve("clara", "request_credit_note")
    assert case.status_after("request_credit_note") == "waiting_supplier"
    waiting = ExceptionCase("waiting_supplier", requester="alice")
    with pytest.raises(CaseConflict):
        waiting.check_can_resolve("clara", "request_credit_note")
    waiting.check_can_resolve("clara", "accept")
    done = ExceptionCase("resolved", requester=None)
    with pytest.raises(CaseConflict):
        done.check_can_resolve("clara", "reject")
    with pytest.raises(CaseConflict):
        done.check_can_assign()


def test_control_characters_and_lone_surrogates_are_refused_with_a_printable_path():
    found = errors_of({**GOOD, "suppliers": {"S\x00": {"price_pct": "1"}},
                       "categories": {"IT": {"price_rule": "either\ud800"}}})
    assert found == {("suppliers.S\ufffd", "control_character"),
                     ("categories.IT.price_rule", "control_character")}
