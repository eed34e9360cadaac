"""The requisition and purchase-order aggregates: every transition, allowed and forbidden."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.requisitions import domain, validation
from services.requisitions.domain import (
    InvalidTransition,
    NotOwner,
    POLine,
    POStatus,
    PurchaseOrder,
    ReceiptLineInput,
    Requisition,
    RequisitionStatus,
    StaleDecision,
    ValidationFailed,
)
from services.requisitions.validation import LineDraft, RequisitionDraft, SupplierDraft

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SUPPLIERS = {"SUP-A", "SUP-B"}
S = RequisitionStatus
D = Decimal


def line(**kw) -> LineDraft:
    values = {"description": "Laptop", "quantity": D("2"), "unit_price": D("10.005"),
              "supplier_id": "SUP-A", "category": "IT"}
    values.update(kw)
    return LineDraft(**values)


def draft(**kw) -> RequisitionDraft:
    values = {"title": "Kit", "cost_center": "CC-100", "currency": "EUR",
              "lines": [line(), line(description="Support", quantity=D("1.5"),
                                     unit_price=D("100"), supplier_id="SUP-B",
                                     receipt_required=False)]}
    values.update(kw)
    return RequisitionDraft(**values)


def req_in(status: RequisitionStatus, submission: int = 1) -> Requisition:
    r = Requisition.create("R1", "alice", draft(), SUPPLIERS, NOW)
    r.status = status
    r.submission = submission
    r.new_history.clear()
    return r


def rules(exc: ValidationFailed) -> set[tuple[str, str]]:
    return {(e.path, e.rule) for e in exc.errors}


# -- purity -----------------------------------------------------------------------------------
def test_domain_imports_no_framework_or_io_library() -> None:
    forbidden = {"fastapi", "sqlalchemy", "kafka", "temporalio", "shared"}
    for name in ("domain.py", "validation.py", "codes.py"):
        tree = ast.parse((Path(domain.__file__).parent / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            assert not {m.split(".")[0] for m in mods} & forbidden, (name, mods)


# -- creation, validation, totals ---------------------------------------------------------------
def test_create_computes_line_amounts_and_total_in_decimal_and_records_history() -> None:
    r = Requisition.create("R1", "alice", draft(), SUPPLIERS, NOW)
    assert r.status is S.DRAFT and r.submission == 0
    assert [ln.amount for ln in r.lines] == [D("20.01"), D("150.00")]  # 20.010 → 20.01
    assert r.total == D("170.01")
    assert [ln.line_no for ln in r.lines] == [1, 2]
    assert [(h.action, h.from_status, h.to_status) for h in r.new_history] == [
        ("created", None, "draft")]


def test_amounts_round_half_up_to_the_currency_minor_unit() -> None:
    jpy = Requisition.create("R", "a", draft(currency="JPY", lines=[line(quantity=D("3"),
                             unit_price=D("0.5"))]), SUPPLIERS, NOW)
    assert jpy.total == D("2")  # 1.5 → 2
    kwd = Requisition.create("R", "a", draft(currency="KWD", lines=[line(quantity=D("1"),
                             unit_price=D("1.2345"))]), SUPPLIERS, NOW)
    assert kwd.total == D("1.235")
    # No binary float drift: 0.1 × 3 is exactly 0.30.
    eur = Requisition.create("R", "a", draft(lines=[line(quantity=D("3"), unit_price=D("0.1"))]),
                             SUPPLIERS, NOW)
    assert str(eur.total) == "0.30"


@pytest.mark.parametrize(("change", "path", "rule"), [
    ({"lines": []}, "lines", "min_items"),
    ({"currency": "EURO"}, "currency", "iso4217"),
    ({"currency": "eur"}, "currency", "iso4217"),
    ({"currency": "XXX"}, "currency", "iso4217"),
    ({"title": "  "}, "title", "required"),
    ({"cost_center": ""}, "cost_center", "required"),
    ({"lines": [line(quantity=D("0"))]}, "lines.0.quantity", "positive"),
    ({"lines": [line(quantity=D("-1"))]}, "lines.0.quantity", "positive"),
    ({"lines": [line(unit_price=D("-0.01"))]}, "lines.0.unit_price", "non_negative"),
    ({"lines": [line(uom="BOX")]}, "lines.0.uom", "unece_rec20"),
    ({"lines": [line(), line(supplier_id="NOPE")]}, "lines.1.supplier_id", "unknown_supplier"),
    ({"lines": [line(description=" ")]}, "lines.0.description", "required"),
    ({"lines": [line()] * (validation.MAX_LINES + 1)}, "lines", "max_items"),
])
def test_invalid_content_is_refused_naming_the_field(change, path, rule) -> None:
    with pytest.raises(ValidationFailed) as exc:
        Requisition.create("R1", "alice", draft(**change), SUPPLIERS, NOW)
    assert (path, rule) in rules(exc.value)


def test_every_problem_is_reported_at_once() -> None:
    bad = draft(currency="ZZZ", lines=[line(quantity=D("0"), unit_price=D("-1"), uom="??")])
    with pytest.raises(ValidationFailed) as exc:
        Requisition.create("R1", "alice", bad, SUPPLIERS, NOW)
    assert rules(exc.value) == {("currency", "iso4217"), ("lines.0.quantity", "positive"),
                                ("lines.0.unit_price", "non_negative"), ("lines.0.uom", "unece_rec20")}


def test_zero_price_is_allowed_and_common_units_are_accepted() -> None:
    lines = [line(uom=u, unit_price=D("0")) for u in ("EA", "C62", "H87", "KGM", "HUR", "DAY",
                                                        "MTR", "LTR", "XBX")]
    r = Requisition.create("R1", "alice", draft(lines=lines), SUPPLIERS, NOW)
    assert r.total == D("0.00")


# -- requisition transitions ------------------------------------------------------------------
ALL = list(S)


@pytest.mark.parametrize("status", ALL)
def test_edit_only_in_draft_or_changes_requested(status: RequisitionStatus) -> None:
    r = req_in(status)
    new = replace(r.draft(), title="New title")
    if status in (S.DRAFT, S.CHANGES_REQUESTED):
        assert r.edit("alice", new, SUPPLIERS, NOW) == ["title"]
        assert r.title == "New title" and r.status is status
        assert r.new_history[-1].action == "updated"
    else:
        with pytest.raises(InvalidTransition) as exc:
            r.edit("alice", new, SUPPLIERS, NOW)
        assert exc.value.status == status.value and status.value in str(exc.value)
        assert r.title == "Kit" and not r.new_history


@pytest.mark.parametrize("status", ALL)
def test_submit_only_from_draft_or_changes_requested(status: RequisitionStatus) -> None:
    r = req_in(status, submission=1 if status is S.CHANGES_REQUESTED else 0)
    if status in (S.DRAFT, S.CHANGES_REQUESTED):
        n = r.submit("alice", NOW)
        assert r.status is S.PENDING_APPROVAL
        assert n == (2 if status is S.CHANGES_REQUESTED else 1) == r.submission
        assert r.new_history[-1].detail["submission"] == n
    else:
        with pytest.raises(InvalidTransition):
            r.submit("alice", NOW)
        assert r.status is status


@pytest.mark.parametrize("status", ALL)
def test_cancel_only_before_ordered(status: RequisitionStatus) -> None:
    r = req_in(status)
    if status in (S.DRAFT, S.PENDING_APPROVAL, S.CHANGES_REQUESTED, S.APPROVED):
        r.cancel("alice", NOW, "not needed")
        assert r.status is S.CANCELLED
        assert r.new_history[-1].detail == {"reason": "not needed"}
    else:
        with pytest.raises(InvalidTransition):
            r.cancel("alice", NOW)
        assert r.status is status


@pytest.mark.parametrize("action", ["edit", "submit", "cancel"])
def test_only_the_owner_acts(action: str) -> None:
    r = req_in(S.DRAFT)
    with pytest.raises(NotOwner):
        if action == "edit":
            r.edit("mallory", r.draft(), SUPPLIERS, NOW)
        elif action == "submit":
            r.submit("mallory", NOW)
        else:
            r.cancel("mallory", NOW)
    assert r.status is S.DRAFT and not r.new_history


@pytest.mark.parametrize("outcome,target", [("approved", S.APPROVED), ("rejected", S.REJECTED),
                                            ("changes_requested", S.CHANGES_REQUESTED)])
@pytest.mark.parametrize("status", ALL)
def test_decisions_apply_only_to_pending_approval(status, outcome, target) -> None:
    r = req_in(status)
    if status is S.PENDING_APPROVAL:
        r.decide(outcome, 1, ["bob"], NOW, comment="ok", policy_version=3)
        assert r.status is target
        assert r.approval["outcome"] == outcome and r.approval["decided_by"] == ["bob"]
        assert r.approval["policy_version"] == 3
        assert r.new_history[-1].actor == "bob"
    else:
        with pytest.raises(InvalidTransition):
            r.decide(outcome, 1, ["bob"], NOW)
        assert r.status is status and r.approval is None


def test_a_decision_for_an_older_submission_is_stale() -> None:
    r = req_in(S.PENDING_APPROVAL, submission=2)
    with pytest.raises(StaleDecision):
        r.decide("approved", 1, ["bob"], NOW)
    assert r.status is S.PENDING_APPROVAL
    r.decide("rejected", 2, ["bob"], NOW)
    assert r.status is S.REJECTED


def test_changes_requested_round_trip_edits_and_resubmits() -> None:
    r = req_in(S.DRAFT, submission=0)
    r.submit("alice", NOW)
    r.decide("changes_requested", 1, ["bob"], NOW, comment="cheaper please")
    r.edit("alice", replace(r.draft(), lines=[line(unit_price=D("9"))]), SUPPLIERS, NOW)
    assert r.total == D("18.00")
    assert r.submit("alice", NOW) == 2
    assert [h.action for h in r.new_history] == ["submitted", "changes_requested", "updated",
                                                 "submitted"]


@pytest.mark.parametrize("status", ALL)
def test_mark_ordered_only_after_approval(status: RequisitionStatus) -> None:
    r = req_in(status)
    if status is S.APPROVED:
        r.mark_ordered(["PO-000001"], NOW)
        assert r.status is S.ORDERED
        assert r.new_history[-1].detail == {"purchase_orders": ["PO-000001"]}
    else:
        with pytest.raises(InvalidTransition):
            r.mark_ordered(["PO-000001"], NOW)


def test_one_planned_po_per_supplier_with_lines_renumbered() -> None:
    lines = [line(supplier_id="SUP-B"), line(supplier_id="SUP-A"), line(supplier_id="SUP-B")]
    r = Requisition.create("R1", "alice", draft(lines=lines), SUPPLIERS, NOW)
    plans = r.plan_purchase_orders()
    assert [p.supplier_id for p in plans] == ["SUP-B", "SUP-A"]
    assert [(n, ln.line_no) for n, ln in plans[0].lines] == [(1, 1), (2, 3)]
    assert [(n, ln.line_no) for n, ln in plans[1].lines] == [(1, 2)]


def po(received: tuple[str, ...] = ("0", "0"), status: POStatus = POStatus.ISSUED) -> PurchaseOrder:
    return PurchaseOrder(id="P1", number="PO-000001", requisition_id="R1", requester="alice",
                         status=status,
                         lines=[POLine(line_no=1, quantity=D("10"), received=D(received[0])),
                                POLine(line_no=2, quantity=D("2"), received=D(received[1]))])


@pytest.mark.parametrize("status", ALL)
def test_requisition_status_follows_its_purchase_orders(status: RequisitionStatus) -> None:
    r = req_in(status)
    if status not in (S.ORDERED, S.PARTIALLY_RECEIVED, S.RECEIVED):
        with pytest.raises(InvalidTransition):
            r.reflect_receipts([po()], "rita", NOW)
        return
    r.reflect_receipts([po(("10", "2")), po(("1", "0"))], "rita", NOW)
    assert r.status is S.PARTIALLY_RECEIVED
    r.reflect_receipts([po(("10", "2")), po(("10", "2"))], "rita", NOW)
    assert r.status is S.RECEIVED
    r.reflect_receipts([po(), po()], "rita", NOW)  # everything returned
    assert r.status is S.ORDERED


# -- purchase orders and receipts -------------------------------------------------------------
def test_partial_then_full_receipt_then_return() -> None:
    p = po()
    p.receive([ReceiptLineInput(1, D("4"))], D("0"))
    assert p.status is POStatus.PARTIALLY_RECEIVED and p.lines[0].received == D("4")
    p.receive([ReceiptLineInput(1, D("6")), ReceiptLineInput(2, D("2"))], D("0"))
    assert p.status is POStatus.RECEIVED and p.fully_received
    p.receive([ReceiptLineInput(2, D("-1"))], D("0"))
    assert p.status is POStatus.PARTIALLY_RECEIVED and p.lines[1].received == D("1")
    p.receive([ReceiptLineInput(1, D("-10")), ReceiptLineInput(2, D("-1"))], D("0"))
    assert p.status is POStatus.ISSUED and not p.any_received


@pytest.mark.parametrize(("items", "allowance", "path", "rule"), [
    ([(1, "11")], "0", "lines.0.quantity", "over_receipt"),
    ([(1, "10.6")], "5", "lines.0.quantity", "over_receipt"),
    ([(1, "-1")], "0", "lines.0.quantity", "below_zero"),
    ([(3, "1")], "0", "lines.0.line_no", "unknown_line"),
    ([(1, "1"), (1, "1")], "0", "lines.1.line_no", "duplicate_line"),
    ([(1, "0")], "0", "lines.0.quantity", "non_zero"),
    ([], "0", "lines", "min_items"),
])
def test_refused_receipts_change_nothing(items, allowance, path, rule) -> None:
    p = po(("0", "1"), POStatus.PARTIALLY_RECEIVED)
    with pytest.raises(ValidationFailed) as exc:
        p.receive([ReceiptLineInput(n, D(q)) for n, q in items], D(allowance))
    assert (path, rule) in rules(exc.value)
    assert [ln.received for ln in p.lines] == [D("0"), D("1")]
    assert p.status is POStatus.PARTIALLY_RECEIVED


def test_one_bad_line_refuses_the_whole_receipt() -> None:
    p = po()
    with pytest.raises(ValidationFailed):
        p.receive([ReceiptLineInput(1, D("5")), ReceiptLineInput(2, D("3"))], D("0"))
    assert not p.any_received


def test_over_receipt_allowance_is_a_percentage_of_the_ordered_quantity() -> None:
    p = po()
    p.receive([ReceiptLineInput(1, D("10.5"))], D("5"))  # exactly at the limit
    assert p.lines[0].received == D("10.5") and p.status is POStatus.PARTIALLY_RECEIVED


@pytest.mark.parametrize("status", list(POStatus))
def test_receipts_and_closing_need_an_open_po(status: POStatus) -> None:
    p = po(status=status)
    if status in (POStatus.CLOSED, POStatus.CANCELLED):
        with pytest.raises(InvalidTransition) as exc:
            p.receive([ReceiptLineInput(1, D("1"))], D("0"))
        assert status.value in str(exc.value)
        with pytest.raises(InvalidTransition):
            p.close()
    else:
        p.close("received")
        assert p.status is POStatus.CLOSED


def test_close_defaults_to_cancelled_when_nothing_was_received() -> None:
    untouched = po()
    assert untouched.close() == "cancelled" and untouched.status is POStatus.CANCELLED
    started = po(("1", "0"), POStatus.PARTIALLY_RECEIVED)
    assert started.close() == "received" and started.status is POStatus.CLOSED
    with pytest.raises(InvalidTransition):
        po(("1", "0"), POStatus.PARTIALLY_RECEIVED).close("cancelled")


@given(st.lists(st.integers(min_value=-12, max_value=12).filter(bool), max_size=25))
def test_received_quantity_never_leaves_zero_to_ordered_plus_allowance(moves: list[int]) -> None:
    p = po()
    for q in moves:
        before = p.lines[0].received
        try:
            p.receive([ReceiptLineInput(1, D(q))], D("10"))
        except ValidationFailed:
            assert p.lines[0].received == before
        assert D(0) <= p.lines[0].received <= D(11)


# -- suppliers and settings -------------------------------------------------------------------
def test_supplier_normalisation_and_validation() -> None:
    s = validation.normalise_supplier(SupplierDraft(id=" SUP-1 ", name=" Acme ", vat_id="de 123 456 789",
                                                peppol_id="0088:123", identifiers=("a:1", "a:1", " ")))
    assert (s.id, s.name, s.vat_id, s.identifiers) == ("SUP-1", "Acme", "DE123456789", ("a:1",))
    assert validation.validate_supplier(s) == []
    bad = SupplierDraft(id="bad id", name="", vat_id="123", peppol_id="9482348239847239874",
                        identifiers=("has space",), currency="EURO")
    assert {(e.path, e.rule) for e in validation.validate_supplier(bad)} == {
        ("id", "pattern"), ("name", "required"), ("vat_id", "pattern"),
        ("peppol_id", "scheme_value"), ("identifiers.0", "pattern"), ("currency", "iso4217")}


@pytest.mark.parametrize("value", ["0088:9482348239847239874", "0192:987654321", "EM:ap@x.org"])
def test_peppol_ids_in_scheme_value_form_are_accepted(value: str) -> None:
    assert validation.validate_supplier(SupplierDraft(id="S", name="n", peppol_id=value)) == []


@pytest.mark.parametrize("value", ["0088", ":123", "88:123", "0088:", "0088:12 3", "abcd:1"])
def test_malformed_peppol_ids_are_refused(value: str) -> None:
    errors = validation.validate_supplier(SupplierDraft(id="S", name="n", peppol_id=value))
    assert [(e.path, e.rule) for e in errors] == [("peppol_id", "scheme_value")]


def test_over_receipt_setting_parses_as_non_negative_percent() -> None:
    assert domain.percent_allowance("0") == D("0")
    assert domain.percent_allowance(" 2.5 ") == D("2.5")
    for bad in ("-1", "abc", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            domain.percent_allowance(bad)


def test_needed_by_and_justification_are_kept() -> None:
    r = Requisition.create("R1", "alice", draft(needed_by=date(2027, 1, 1), justification="why"),
                           SUPPLIERS, NOW)
    assert (r.needed_by, r.justification) == (date(2027, 1, 1), "why")
