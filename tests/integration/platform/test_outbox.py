"""Outbox + relay against the real PostgreSQL and broker."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from shared.contracts.requisitions import RequisitionCancelled
from shared.devstack import broker_process, free_port, port_open, wait_for
from shared.messaging import outbox as outbox_table
from shared.outbox import OutboxRelay
from shared.settings import Settings
from tests.support.kafka import TopicReader
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration


def _event(req_id: str, n: int) -> RequisitionCancelled:
    return RequisitionCancelled(requisition_id=req_id, cancelled_by=f"user-{n}",
                                cancelled_at=datetime.now(UTC))


def _write(db, outbox, events) -> list[str]:  # noqa: ANN001
    ids = []
    for ev in events:  # one transaction per event
        with db.session() as s, s.begin():
            ids.append(outbox.add(s, ev, correlation_id=ev.requisition_id))
    return ids


def _run_relays(outbox, db, settings, count: int = 1):  # noqa: ANN001, ANN202
    stop = threading.Event()
    threads = []
    for _ in range(count):
        relay = OutboxRelay(outbox, db.sessions, settings)
        t = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        t.start()
        threads.append(t)

    def halt() -> None:
        stop.set()
        for t in threads:
            t.join(15)

    return halt


def _unpublished(db) -> int:  # noqa: ANN001
    with db.session() as s:
        return s.execute(select(func.count()).select_from(outbox_table)
                         .where(outbox_table.c.published_at.is_(None))).scalar_one()


def test_events_arrive_once_each_in_order_per_key_with_cloudevents_headers(settings, platform_db, outbox):
    keys = [f"REQ-{i}" for i in range(5)]
    events = [_event(keys[n % 5], n) for n in range(60)]
    ids = _write(platform_db, outbox, events)
    halt = _run_relays(outbox, platform_db, settings)
    reader = TopicReader(settings, settings.topic("p2p.requisitions"))
    try:
        got = reader.wait_for(60)
    finally:
        halt()
        reader.close()
    assert sorted(e.id for e in got) == sorted(ids)  # each exactly once
    per_key = defaultdict(list)
    for env in got:
        per_key[env.subject].append(int(env.data["cancelled_by"].split("-")[1]))
    for key, ns in per_key.items():
        assert ns == sorted(ns), f"events of {key} out of order: {ns}"
    record = reader.records[0]
    headers = dict(record.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"p2p.requisition.cancelled.v1"
    assert headers["ce_source"] == b"/p2p/platform-test"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_subject"] == record.key
    assert headers["ce_correlationid"] == record.key
    uuid.UUID(headers["ce_id"].decode())
    datetime.fromisoformat(headers["ce_time"].decode().replace("Z", "+00:00"))
    assert _unpublished(platform_db) == 0


def test_two_relays_at_once_publish_no_duplicates(settings, platform_db, outbox):
    ids = _write(platform_db, outbox, [_event(f"REQ-{n % 7}", n) for n in range(200)])
    halt = _run_relays(outbox, platform_db, settings, count=2)
    reader = TopicReader(settings, settings.topic("p2p.requisitions"))
    try:
        wait_until(lambda: _unpublished(platform_db) == 0, 30, message="all rows published")
        got = reader.wait_for(201, timeout=2)  # give a duplicate the chance to show up
    finally:
        halt()
        reader.close()
    assert len(got) == 200
    assert sorted(e.id for e in got) == sorted(ids)


def test_rolled_back_transaction_publishes_nothing(settings, platform_db, outbox):
    with platform_db.session() as s:
        s.begin()
        outbox.add(s, _event("REQ-ROLLBACK", 1))
        s.rollback()
    kept = _write(platform_db, outbox, [_event("REQ-KEPT", 2)])
    halt = _run_relays(outbox, platform_db, settings)
    reader = TopicReader(settings, settings.topic("p2p.requisitions"))
    try:
        got = reader.wait_for(2, timeout=3)
    finally:
        halt()
        reader.close()
    assert [e.id for e in got] == kept


def test_events_written_while_broker_is_down_are_published_after_it_returns(infra, platform_db, outbox):
    port = free_port()
    broker = broker_process(port, infra.workdir / f"kafka-{port}.log").start()
    wait_for(lambda: port_open(port), 20, "broker")
    settings = Settings(database_url=infra.pg.uri, kafka_bootstrap=f"127.0.0.1:{port}",
                        topic_prefix="down.", relay_idle_seconds=0.05, topic_partitions=3)
    from shared.kafka import create_topics

    create_topics(settings)
    halt = _run_relays(outbox, platform_db, settings)
    try:
        first = _write(platform_db, outbox, [_event("REQ-A", 0)])
        wait_until(lambda: _unpublished(platform_db) == 0, 20, message="first event published")
        broker.stop()
        during = _write(platform_db, outbox, [_event("REQ-A", n) for n in range(1, 21)])
        # While the broker is down nothing can be marked published.
        wait_until(lambda: _unpublished(platform_db) == 20, 5, message="rows pending")
        # Tansu keeps topics in memory: a restarted broker starts empty, like a fresh cluster.
        broker = broker_process(port, infra.workdir / f"kafka-{port}.log").start()
        wait_for(lambda: port_open(port), 20, "broker")
        create_topics(settings)
        wait_until(lambda: _unpublished(platform_db) == 0, 60, message="backlog published")
        reader = TopicReader(settings, settings.topic("p2p.requisitions"))
        got = reader.wait_for(20, timeout=10)
        reader.close()
    finally:
        halt()
        broker.stop()
    assert sorted(e.id for e in got) == sorted(during)
    assert first[0] not in {e.id for e in got}
    assert [int(e.data["cancelled_by"].split("-")[1]) for e in got] == list(range(1, 21))


def test_the_published_hook_sees_acknowledged_rows_and_a_failing_hook_publishes_again(
        settings, platform_db, outbox):
    """The hook runs in the relay's transaction after the broker's acknowledgement: when it
    fails, nothing is marked published and the rows go out again (consumers dedupe by ce_id)."""
    ids = _write(platform_db, outbox, [_event("REQ-HOOK", n) for n in range(3)])
    seen: list[list[str]] = []

    def hook(session, rows) -> None:  # noqa: ANN001
        seen.append([r.event_id for r in rows])
        if len(seen) == 1:
            raise RuntimeError("the service's bookkeeping failed")

    relay = OutboxRelay(outbox, platform_db.sessions, settings, on_published=hook)
    with pytest.raises(RuntimeError):
        relay.publish_batch()
    assert _unpublished(platform_db) == 3
    assert relay.publish_batch() == 3
    assert _unpublished(platform_db) == 0
    assert seen == [ids, ids]
    reader = TopicReader(settings, settings.topic("p2p.requisitions"))
    delivered = [e.id for e in reader.wait_for(6)]
    reader.close()
    assert sorted(delivered) == sorted(ids * 2)  # the first batch went out before the hook failed
