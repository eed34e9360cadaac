"""`p2p demo` as a newcomer runs it, against the flow stack: it completes and its summary
shows cleared invoices and resolved exceptions."""

from __future__ import annotations

import re

import pytest

from tests.e2e.stackproc import run_demo

pytestmark = pytest.mark.e2e


def _row(output: str, label: str) -> str:
    line = next((ln for ln in output.splitlines() if label in ln), None)
    assert line is not None, f"no {label!r} row in:\n{output}"
    return line


def test_demo_runs_a_month_against_the_stack(stack, api):
    proc = run_demo(stack, requisitions=10, seed=7)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    assert "demo complete" in proc.stderr
    cleared = _row(out, "cleared_for_payment")
    assert int(cleared.split("│")[-2]) >= 1, cleared
    touchless = re.search(r"(\d+)% \((\d+) of (\d+)\)", _row(out, "touchless rate"))
    assert touchless and 0 < int(touchless.group(2)) <= int(touchless.group(3))
    reasons = out[out.index("Exceptions by reason"):out.index("Look closer")]
    assert re.search(r"[A-Z_]{6,}\s+│\s+\d+", reasons), reasons  # at least one reason row
    assert "resolution:" in reasons
    assert re.search(r"approval cycle p50 / p95.*\d+\.\d s / \d+\.\d s", out)
    assert f"http://127.0.0.1:{stack.ports['approvals']}/docs" in out
    assert "/metrics" in out
    # The run row names the plan the header announced (seed 7 → one fixed plan).
    plan = re.search(r"plan ([0-9a-f]{12})", proc.stderr).group(1)
    assert f"seed 7, plan {plan}" in out
