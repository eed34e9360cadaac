"""A real Prometheus (Debian package `prometheus`) for tests: start it on a free port with a
scrape configuration derived from deploy/prometheus.yml, and query it with PromQL.

Reusable by other suites (e.g. against `p2p up` after `p2p demo`):
    config = local_scrape_config({"requisitions": 8001, ...})
    with running_prometheus(config, workdir) as prom:
        prom.query('sum(p2p_match_outcomes_total)')
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from shared.devstack import ManagedProcess, free_port
from tests.support.poll import wait_until
from tests.unit.deploy.compose import ROOT

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus.yml"
PROMETHEUS_JOB = "prometheus"


def require_prometheus() -> None:
    """Fail (never skip) when the binaries are missing: CI must install them."""
    for binary in (PROMETHEUS, PROMTOOL):
        if not binary.exists():
            pytest.fail(f"{binary} is missing: this test runs a real Prometheus. Install the Debian "
                        "package: apt-get install -y prometheus (make test does it when root)")


def local_scrape_config(service_ports: dict[str, int], interval: str = "1s") -> dict:
    """deploy/prometheus.yml with each job's compose target replaced by 127.0.0.1:<port>; the
    Prometheus self-scrape job is dropped (its port is only known at start). Scrapes every
    `interval` so tests do not wait 15 s for a sample."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"].update(scrape_interval=interval, scrape_timeout=interval,
                            evaluation_interval=interval)
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name == PROMETHEUS_JOB:
            continue
        assert name in service_ports, f"no local port for the scrape job {name!r}"
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{service_ports[name]}"]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


class Prom:
    def __init__(self, port: int, process: ManagedProcess) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.process = process

    def query(self, expr: str) -> list[dict]:
        """Instant query; asserts Prometheus parsed and evaluated the expression."""
        r = httpx.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]["result"]


@contextmanager
def running_prometheus(config: dict, workdir: Path) -> Iterator[Prom]:
    require_prometheus()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    process = ManagedProcess("prometheus", [
        str(PROMETHEUS), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ], log_path=log).start()
    prom = Prom(port, process)
    try:
        def ready() -> bool:
            assert process.alive(), f"Prometheus exited: {log.read_text()[-2000:]}"
            try:
                return httpx.get(f"{prom.base}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, interval=0.2, message="Prometheus /-/ready")
        yield prom
    finally:
        process.stop()
