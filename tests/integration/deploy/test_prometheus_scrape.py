"""A real Prometheus (Debian package `prometheus`) scrapes the four services with the jobs of
deploy/prometheus.yml; PromQL reads their metrics back and accepts every dashboard expression."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from shared.devstack import SERVICES, ManagedProcess, free_port, readyz_ok, service_process
from tests.integration.deploy.promstack import (
    PROMTOOL,
    local_scrape_config,
    require_prometheus,
    running_prometheus,
)
from tests.support.poll import wait_until
from tests.support.stack import Infra, drop_databases
from tests.unit.deploy.compose import DASHBOARD, ROOT

pytestmark = pytest.mark.integration

HEALTHZ_CALLS = 3
SERVICE_JOBS = 'job=~"requisitions|approvals|invoices|matching"'


@pytest.fixture(scope="module")
def scraped(infra: Infra):
    """The four services as `p2p serve` processes (production settings) and a Prometheus that
    scrapes them."""
    require_prometheus()
    settings = infra.settings()
    temporal = infra.ensure_temporal()
    workdir = Path(tempfile.mkdtemp(prefix="p2p-prom-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_")}
    env.update(
        P2P_ENV="production",
        P2P_JWT_SECRET=secrets.token_hex(32),
        P2P_DATABASE_URL=settings.database_url,
        P2P_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        P2P_TOPIC_PREFIX=settings.topic_prefix,
        P2P_TOPIC_PARTITIONS=str(settings.topic_partitions),
        P2P_TEMPORAL_ADDRESS=temporal,
        P2P_TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        P2P_RELAY_IDLE_SECONDS="0.05",
    )
    ports = {s: free_port() for s in SERVICES}
    processes: list[ManagedProcess] = []
    try:
        for service, port in ports.items():
            processes.append(
                service_process(service, port, env, workdir / f"{service}.log").start())
        for proc, (service, port) in zip(processes, ports.items()):
            def ready(proc=proc, port=port, service=service) -> bool:
                assert proc.alive(), (f"{service} exited: "
                                      + (workdir / f"{service}.log").read_text()[-2000:])
                try:
                    return readyz_ok(port)
                except httpx.HTTPError:
                    return False

            wait_until(ready, timeout=90, interval=0.2, message=f"{service} /readyz")

        with running_prometheus(local_scrape_config(ports), workdir / "prometheus") as prom:
            yield prom, ports
    finally:
        for proc in reversed(processes):
            proc.stop()
        drop_databases(settings, SERVICES)
        shutil.rmtree(workdir, ignore_errors=True)


def test_every_service_target_is_up(scraped):
    prom, _ = scraped

    def all_up() -> bool:
        result = prom.query(f"up{{{SERVICE_JOBS}}} == 1")
        return {r["metric"]["job"] for r in result} == set(SERVICES)

    wait_until(all_up, timeout=30, interval=0.25, message="up == 1 for the four services")


def test_http_request_counts_are_read_back_with_promql(scraped):
    prom, ports = scraped
    for port in ports.values():
        for _ in range(HEALTHZ_CALLS):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    expr = ('sum by (job, service) '
            '(p2p_http_requests_total{route="/healthz", method="GET", status="200"})')

    def counted() -> dict[str, float]:
        rows = prom.query(expr)
        values = {r["metric"]["service"]: float(r["value"][1]) for r in rows}
        for r in rows:
            # The scrape job and the service's own label agree, so `job` names the service.
            assert r["metric"]["job"] == r["metric"]["service"], r["metric"]
        if set(values) == set(SERVICES) and min(values.values()) >= HEALTHZ_CALLS:
            return values
        return {}

    values = wait_until(counted, timeout=30, interval=0.25,
                        message="p2p_http_requests_total for /healthz from every service")
    assert all(v >= HEALTHZ_CALLS for v in values.values())


def test_every_dashboard_expression_is_valid_promql(scraped):
    prom, _ = scraped
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    substitutions = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s",
                     "$kpi_window": "1h"}
    for expr in exprs:
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        prom.query(expr)  # asserts Prometheus parsed and evaluated it


def test_dashboard_reads_live_service_metrics(scraped):
    prom, _ = scraped
    # Panels of the dashboard evaluated against the running services return data.
    def live() -> bool:
        up = prom.query(f"sum(up{{{SERVICE_JOBS}}})")
        backlog = prom.query("sum by (job) (p2p_outbox_pending)")
        return (bool(up) and float(up[0]["value"][1]) == len(SERVICES)
                and {r["metric"]["job"] for r in backlog} == set(SERVICES))

    wait_until(live, timeout=30, interval=0.25, message="dashboard panels with live data")


def test_promtool_accepts_both_scrape_configs():
    require_prometheus()
    for name in ("prometheus.yml", "prometheus.local.yml"):
        result = subprocess.run([str(PROMTOOL), "check", "config", str(ROOT / "deploy" / name)],
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
