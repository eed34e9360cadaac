"""The Grafana dashboard charts what §5 asks for, and only metrics that exist."""

from __future__ import annotations

import json
import re

import pytest

from tests.unit.deploy.compose import DASHBOARD, ROOT

# Architecture §5: the metrics every deployment can rely on.
SECTION_5 = {
    "p2p_http_requests_total": "counter",
    "p2p_http_request_duration_seconds": "histogram",
    "p2p_events_published_total": "counter",
    "p2p_events_consumed_total": "counter",
    "p2p_outbox_pending": "gauge",
    "p2p_consumer_lag": "gauge",
    "p2p_requisitions_submitted_total": "counter",
    "p2p_approval_decisions_total": "counter",
    "p2p_approval_cycle_seconds": "histogram",
    "p2p_invoices_received_total": "counter",
    "p2p_invoices_rejected_on_intake_total": "counter",
    "p2p_match_outcomes_total": "counter",
    "p2p_exceptions_open": "gauge",
    "p2p_exception_age_seconds": "histogram",
    "p2p_invoice_cycle_seconds": "histogram",
}

# What the dashboard must chart (issue 7 item 6).
REQUIRED = {
    "p2p_match_outcomes_total",        # touchless rate
    "p2p_approval_cycle_seconds",      # approval cycle time
    "p2p_invoice_cycle_seconds",       # invoice cycle time
    "p2p_exceptions_open",             # open exceptions by reason
    "p2p_exception_age_seconds",       # exception age
    "p2p_consumer_lag",
    "p2p_outbox_pending",
    "p2p_http_request_duration_seconds",
    "p2p_http_requests_total",         # error rate
    "p2p_events_published_total",
    "p2p_events_consumed_total",
    "p2p_approval_decisions_total",
    "p2p_invoices_received_total",
}

_DECLARED = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"'](p2p_[a-z0-9_]+)[\"']", re.DOTALL)
_METRIC = re.compile(r"\bp2p_[a-z0-9_]+")
_BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}


def declared_in_code() -> dict[str, str]:
    """Metric names declared with prometheus_client in shared/ and services/ (a grep)."""
    found = {}
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        for kind, name in _DECLARED.findall(path.read_text()):
            found[name] = kind.lower()
            if kind == "Counter" and not name.endswith("_total"):
                found[f"{name}_total"] = "counter"
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def expressions(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def referenced(dashboard: dict) -> set[str]:
    return {m for e in expressions(dashboard) for m in _METRIC.findall(e)}


def test_the_grep_finds_the_platform_metrics():
    code = declared_in_code()
    assert code["p2p_http_requests_total"] == "counter"
    assert code["p2p_http_request_duration_seconds"] == "histogram"
    assert code["p2p_consumer_lag"] == "gauge"


def test_dashboard_charts_every_required_metric(dashboard):
    names = referenced(dashboard)
    base = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    missing = REQUIRED - base
    assert not missing, f"the dashboard does not chart {sorted(missing)}"


def test_dashboard_names_only_metrics_that_exist(dashboard):
    known = {**SECTION_5, **declared_in_code()}
    unknown = []
    for name in referenced(dashboard):
        if name in known:
            assert known[name] != "histogram", f"{name} is a histogram: use _bucket/_sum/_count"
            continue
        base, _, suffix = name.rpartition("_")
        if suffix in ("bucket", "sum", "count") and known.get(base) == "histogram":
            continue
        unknown.append(name)
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"


def test_touchless_rate_is_matched_over_all_outcomes(dashboard):
    touchless = [p for p in dashboard["panels"] if p["title"].lower().startswith("touchless")]
    assert touchless
    for panel in touchless:
        (expr,) = [t["expr"] for t in panel["targets"]]
        numerator, _, denominator = expr.partition(" / ")
        assert 'p2p_match_outcomes_total{outcome="matched"}' in numerator
        assert "p2p_match_outcomes_total[" in denominator and "outcome=" not in denominator
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_cycle_times_show_p50_and_p95(dashboard):
    for metric in ("p2p_approval_cycle_seconds", "p2p_invoice_cycle_seconds",
                   "p2p_exception_age_seconds"):
        exprs = [e for e in expressions(dashboard) if f"{metric}_bucket" in e]
        quantiles = {re.match(r"histogram_quantile\((0\.\d+),", e).group(1) for e in exprs}
        assert quantiles == {"0.5", "0.95"}, metric


def test_http_errors_and_latency_are_per_service(dashboard):
    exprs = expressions(dashboard)
    assert any('status=~"5.."' in e and "by (service)" in e for e in exprs)
    assert any(e.startswith("histogram_quantile(0.95") and "p2p_http_request_duration_seconds"
               in e and "service" in e for e in exprs)
    assert any("sum by (reason) (p2p_exceptions_open)" in e for e in exprs)


def test_expressions_are_balanced_and_use_only_defined_variables(dashboard):
    defined = {v["name"] for v in dashboard["templating"]["list"]} | _BUILTIN_VARS
    for expr in expressions(dashboard):
        for open_, close in ("()", "{}", "[]"):
            depth = 0
            for ch in expr:
                depth += (ch == open_) - (ch == close)
                assert depth >= 0, expr
            assert depth == 0, expr
        for var in re.findall(r"\$(\w+)", expr):
            assert var in defined, f"undefined variable ${var} in {expr}"


def test_panels_have_unique_ids_and_do_not_overlap(dashboard):
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
    assert dashboard["uid"] and dashboard["title"]
