"""Report arithmetic and the AP clerk's choices, from API-shaped data."""

from __future__ import annotations

import pytest

from shared.cli.demo.report import approval_cycles, invoice_cycle, percentile, was_touched
from shared.cli.demo.runner import DemoRun


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) is None


def test_approval_cycles_pair_each_submission_with_its_decision():
    history = [
        {"at": "2026-10-01T09:00:00Z", "to_status": "draft"},
        {"at": "2026-10-01T09:00:05Z", "to_status": "pending_approval"},
        {"at": "2026-10-01T09:00:35Z", "to_status": "changes_requested"},
        {"at": "2026-10-01T09:01:00Z", "to_status": "draft"},
        {"at": "2026-10-01T09:02:00Z", "to_status": "pending_approval"},
        {"at": "2026-10-01T09:02:12.5Z", "to_status": "approved"},
        {"at": "2026-10-01T09:02:13Z", "to_status": "ordered"},
    ]
    assert approval_cycles(history) == [30.0, 12.5]
    assert approval_cycles([{"at": "2026-10-01T09:00:05Z", "to_status": "pending_approval"}]) \
        == []


def test_invoice_cycle_runs_from_receipt_to_clearance():
    view = {"received_at": "2026-10-01T09:00:00+00:00", "history": [
        {"status": "received", "at": "2026-10-01T09:00:00+00:00"},
        {"status": "awaiting_receipt", "at": "2026-10-01T09:00:01+00:00"},
        {"status": "cleared_for_payment", "at": "2026-10-01T09:00:04.250000+00:00"}]}
    assert invoice_cycle(view) == 4.25
    assert not was_touched(view)
    rejected = {"received_at": "2026-10-01T09:00:00+00:00", "history": [
        {"status": "exception", "at": "2026-10-01T09:00:01+00:00"},
        {"status": "rejected", "at": "2026-10-01T09:00:09+00:00"}]}
    assert invoice_cycle(rejected) is None
    assert was_touched(rejected)


@pytest.mark.parametrize(("reasons", "first_look", "action"), [
    (["PRICE_VARIANCE"], True, "accept"),
    (["TOTAL_VARIANCE"], True, "accept"),
    (["DUPLICATE_SUSPECTED", "QTY_OVER_ORDERED"], True, "reject"),
    (["SUPPLIER_MISMATCH", "PRICE_VARIANCE"], True, "reject"),
    (["PO_NOT_FOUND"], True, "reject"),
    (["QTY_OVER_ORDERED", "QTY_OVER_RECEIVED"], True, "request_credit_note"),
    (["QTY_OVER_RECEIVED", "PRICE_VARIANCE"], True, "rematch"),
    (["QTY_OVER_RECEIVED"], False, "request_credit_note"),
    (["MISSING_RECEIPT"], True, "rematch"),
])
def test_the_clerk_acts_on_the_reasons(reasons, first_look, action):
    chosen, code, comment = DemoRun.clerk_action(reasons, first_look)
    assert chosen == action
    assert code and comment


def test_an_unreachable_stack_exits_2_with_a_clear_message(capsys):
    from shared.cli.demo import EXIT_UNREACHABLE, run_demo
    from shared.devstack import free_port
    from shared.settings import Settings

    ports = {f"{s}_port": free_port() for s in ("requisitions", "approvals", "invoices",
                                                 "matching")}
    assert run_demo(requisitions=2, seed=1, settings=Settings(**ports)) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "not reachable" in err and "p2p up" in err
    assert f"http://127.0.0.1:{ports['requisitions_port']}" in err
