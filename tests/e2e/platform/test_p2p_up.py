"""`p2p up` end to end: everything starts, is ready, serves metrics, and stops without orphans."""

from __future__ import annotations

import shutil
import socket
import time

import httpx
import psutil
import pytest

from shared.devstack import SERVICES
from tests.e2e.stackproc import stack_dir, start_up, wait_ready
from tests.support.poll import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def tmp_path():  # noqa: PT004 - shadows pytest's: see stack_dir
    path = stack_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

REQUIRED_METRICS = (
    "p2p_http_requests_total",
    "p2p_http_request_duration_seconds",
    "p2p_events_published_total",
    "p2p_events_consumed_total",
    "p2p_outbox_pending",
    "p2p_consumer_lag",
)


def test_up_starts_everything_ready_and_sigterm_leaves_no_process(tmp_path):
    started = time.monotonic()
    up = start_up(tmp_path / "state")
    try:
        wait_ready(up)
        ready_after = time.monotonic() - started
        for service in SERVICES:
            r = httpx.get(f"{up.url(service)}/readyz", timeout=5)
            assert r.status_code == 200, (service, r.text)
            assert r.json()["checks"]["database"] == "ok"
            assert r.json()["checks"]["kafka"] == "ok"
            metrics = httpx.get(f"{up.url(service)}/metrics", timeout=5).text
            missing = [m for m in REQUIRED_METRICS if f"# TYPE {m} " not in metrics]
            assert not missing, f"{service} /metrics lacks {missing}"
            assert httpx.get(f"{up.url(service)}/docs", timeout=5).status_code == 200
        assert httpx.get(f"{up.url('approvals')}/readyz").json()["checks"]["temporal"] == "ok"
        tree = up.descendants()
        names = {p.name() for p in tree}
        assert any("tansu" in n for n in names), names
        assert any("temporal" in n for n in names), names
        postgres = [p for p in psutil.process_iter(["cmdline"])
                    if str(up.state_dir / "postgres") in " ".join(p.info["cmdline"] or [])]
        assert postgres, "embedded PostgreSQL is not running from the state dir"
        print(f"p2p up ready after {ready_after:.1f}s")

        # A service killed with -9 is restarted by `p2p up` and becomes ready again.
        matching = [p for p in tree if "matching" in " ".join(p.cmdline())]
        assert len(matching) == 1
        matching[0].kill()
        matching[0].wait(10)

        def back() -> bool:
            try:
                return httpx.get(f"{up.url('matching')}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(back, 60, interval=0.2, message="matching restarted and ready")
        assert "matching exited" in up.output()
        tree = up.descendants()
    finally:
        code = up.terminate()
    assert code == 0, up.output()[-3000:]
    leftovers = [p for p in tree + postgres if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not leftovers, f"still running after SIGTERM: {[(p.pid, p.name()) for p in leftovers]}"


def test_second_up_reuses_the_state_dir(tmp_path):
    state = tmp_path / "state"
    first = start_up(state)
    try:
        wait_ready(first)
    finally:
        assert first.terminate() == 0
    pg_version = (state / "postgres" / "PG_VERSION").read_text()
    second = start_up(state)
    try:
        wait_ready(second)
        assert (state / "postgres" / "PG_VERSION").read_text() == pg_version
        assert "initdb" not in second.output()
    finally:
        assert second.terminate() == 0


def test_a_taken_port_gives_a_clear_error_and_starts_nothing(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        up = start_up(tmp_path / "state", extra_env={"P2P_INVOICES_PORT": str(port)})
        code = up.proc.wait(60)
    assert code == 1
    out = up.output()
    assert f"port {port}" in out and "P2P_INVOICES_PORT" in out, out
    assert not (tmp_path / "state" / "postgres").exists()
