"""Ops view of a demo: a real Prometheus with deploy/prometheus.yml's jobs scrapes the stack
that `p2p up` started while `p2p demo` runs, and the touchless rate (matched / all decisions, §4.4) is read back
with PromQL."""

from __future__ import annotations

import pytest

from tests.e2e.stackproc import run_demo, stack_dir
from tests.integration.deploy.promstack import local_scrape_config, running_prometheus
from tests.support.poll import wait_until

pytestmark = pytest.mark.e2e

SERVICES = ("requisitions", "approvals", "invoices", "matching")
TOUCHLESS = ('sum(p2p_match_outcomes_total{outcome="matched"}) / sum(p2p_match_outcomes_total)')


def test_touchless_rate_is_read_back_from_prometheus_after_a_demo(stack):
    config = local_scrape_config({s: stack.ports[s] for s in SERVICES})
    with running_prometheus(config, stack_dir("p2p-prom-")) as prom:
        wait_until(lambda: len(prom.query("up == 1")) == len(SERVICES), 30, interval=0.5,
                   message="all four services scraped")
        demo = run_demo(stack, requisitions=8, seed=11)
        assert demo.returncode == 0, f"{demo.stdout}\n{demo.stderr}"

        def scraped_outcomes() -> dict[str, float]:
            return {r["metric"]["outcome"]: float(r["value"][1])
                    for r in prom.query("sum by (outcome) (p2p_match_outcomes_total)")}

        # Wait for a scrape that saw the demo's decisions: matched and exceptions both happen.
        outcomes = wait_until(lambda: (o := scraped_outcomes()).get("matched") and len(o) > 1 and o,
                              30, interval=0.5, message="the demo's match outcomes in Prometheus")
        (rate,) = prom.query(TOUCHLESS)
        touchless = float(rate["value"][1])
        assert 0 < touchless < 1
        assert touchless == pytest.approx(outcomes["matched"] / sum(outcomes.values()))
        print(f"touchless rate from Prometheus: {touchless:.2%} over {sum(outcomes.values()):.0f} decisions")
