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
import yaml

from shared.devstack import SERVICES, ManagedProcess, free_port, readyz_ok, service_process
from tests.support.poll import wait_until
from tests.support.stack import Infra, drop_databases
from tests.unit.deploy.compose import DASHBOARD, ROOT

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus.yml"
HEALTHZ_CALLS = 3


def _require_prometheus() -> None:
    for binary in (PROMETHEUS, PROMTOOL):
        if not binary.exists():
            pytest.fail(f"{binary} is missing: this test runs a real Prometheus. Install the Debian "
                        "package: apt-get install -y prometheus (make test does it when root)")


def local_scrape_config(service_ports: dict[str, int], prometheus_port: int) -> dict:
    """deploy/prometheus.yml with the compose targets replaced by the local ports, scraping every
    second so the test does not wait 15 s per sample."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    addresses = {**{s: f"127.0.0.1:{p}" for s, p in service_ports.items()},
                 "prometheus": f"127.0.0.1:{prometheus_port}"}
    for job in config["scrape_configs"]:
        assert job["job_name"] in addresses, f"no local address for job {job['job_name']}"
        for static in job["static_configs"]:
            static["targets"] = [addresses[job["job_name"]]]
    return config


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]["result"]


@pytest.fixture(scope="module")
def scraped(infra: Infra):
    """The four services as `p2p serve` processes (production settings) and a Prometheus that
    scrapes them."""
    _require_prometheus()
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

        prom_port = free_port()
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(local_scrape_config(ports, prom_port)))
        prometheus = ManagedProcess("prometheus", [
            str(PROMETHEUS), f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
        ], log_path=workdir / "prometheus.log").start()
        processes.append(prometheus)
        prom = Prom(prom_port)

        def prometheus_ready() -> bool:
            assert prometheus.alive(), (workdir / "prometheus.log").read_text()[-2000:]
            try:
                return httpx.get(f"{prom.base}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(prometheus_ready, timeout=30, interval=0.2, message="Prometheus /-/ready")
        yield prom, ports
    finally:
        for proc in reversed(processes):
            proc.stop()
        drop_databases(settings, SERVICES)
        shutil.rmtree(workdir, ignore_errors=True)


def test_every_service_target_is_up(scraped):
    prom, _ = scraped

    def all_up() -> bool:
        result = prom.query('up{job=~"requisitions|approvals|invoices|matching"} == 1')
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
        up = prom.query('sum(up{job=~"requisitions|approvals|invoices|matching"})')
        backlog = prom.query("sum by (job) (p2p_outbox_pending)")
        return (bool(up) and float(up[0]["value"][1]) == len(SERVICES)
                and {r["metric"]["job"] for r in backlog} == set(SERVICES))

    wait_until(live, timeout=30, interval=0.25, message="dashboard panels with live data")


def test_promtool_accepts_both_scrape_configs():
    _require_prometheus()
    for name in ("prometheus.yml", "prometheus.local.yml"):
        result = subprocess.run([str(PROMTOOL), "check", "config", str(ROOT / "deploy" / name)],
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
