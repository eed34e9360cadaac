"""Consumer runner: inbox dedupe, retries, DLQ, crash between DB commit and offset commit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select

from shared.consumer import ConsumerRunner, Subscription
from shared.contracts.requisitions import RequisitionCancelled
from shared.messaging import inbox
from tests.integration.platform.conftest import widgets
from tests.support.kafka import TopicReader, produce
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration

TYPE = RequisitionCancelled.ce_type


def _cancelled(req_id: str) -> RequisitionCancelled:
    return RequisitionCancelled(requisition_id=req_id, cancelled_by="u", cancelled_at=datetime.now(UTC))


def _store_widget(session, event, envelope) -> None:  # noqa: ANN001
    session.execute(insert(widgets).values(id=envelope.id, note=event.requisition_id))


def _count(db, table) -> int:  # noqa: ANN001
    with db.session() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


class _Runner:
    def __init__(self, settings, db, handlers, name="platform.test") -> None:  # noqa: ANN001
        self.runner = ConsumerRunner(name, Subscription(handlers), db.sessions, settings)
        self.outcomes: list[str] = []
        original = self.runner.settle

        def recording(records):  # noqa: ANN001, ANN202
            outcomes = original(records)
            self.outcomes.extend(outcomes)
            return outcomes

        self.runner.settle = recording
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.runner.run, args=(self.stop,), daemon=True)

    def __enter__(self):  # noqa: ANN204
        self.thread.start()
        assert self.runner.ready.wait(30), "no partitions assigned"
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.stop.set()
        self.thread.join(15)


def test_redelivered_event_has_its_effect_once(settings, platform_db):
    with _Runner(settings, platform_db, {TYPE: _store_widget}) as r:
        env = produce(settings, _cancelled("REQ-1"))
        produce(settings, _cancelled("REQ-1"), event_id=env.id)  # same ce_id again
        wait_until(lambda: len(r.outcomes) == 2, 20, message="both deliveries settled")
    assert sorted(r.outcomes) == ["duplicate", "processed"]
    assert _count(platform_db, widgets) == 1


def test_failing_handler_is_retried_then_dead_lettered_and_the_next_event_still_processed(settings, platform_db):
    attempts = []

    def flaky(session, event, envelope):  # noqa: ANN001
        if event.requisition_id == "POISON":
            attempts.append(1)
            session.execute(insert(widgets).values(id=envelope.id, note="must roll back"))
            raise RuntimeError("cannot handle this one")
        _store_widget(session, event, envelope)

    with _Runner(settings, platform_db, {TYPE: flaky}) as r:
        poison = produce(settings, _cancelled("POISON"))
        good = produce(settings, _cancelled("POISON-NEIGHBOUR"))
        wait_until(lambda: len(r.outcomes) == 2, 30, message="both settled")
    assert r.outcomes == ["dead_lettered", "processed"] or sorted(r.outcomes) == ["dead_lettered", "processed"]
    # One more call when both came in one poll: the batch tried it before going one by one.
    assert len(attempts) in (settings.consumer_max_attempts, settings.consumer_max_attempts + 1)
    with platform_db.session() as s:
        assert s.execute(select(widgets.c.id)).scalars().all() == [good.id]
        assert s.execute(select(inbox.c.event_id)).scalars().all() == [good.id]
    reader = TopicReader(settings, settings.topic("p2p.requisitions") + ".dlq")
    parked = reader.wait_for(1)
    headers = dict(reader.records[0].headers)
    reader.close()
    assert [e.id for e in parked] == [poison.id]
    assert b"cannot handle this one" in headers["p2p_error"]
    assert headers["p2p_attempts"] == str(settings.consumer_max_attempts).encode()
    assert headers["p2p_consumer"] == b"platform.test"


def test_unknown_types_and_garbage_do_not_stop_the_consumer(settings, platform_db):
    from tests.support.kafka import produce_raw

    with _Runner(settings, platform_db, {TYPE: _store_widget}) as r:
        topic = settings.topic("p2p.requisitions")
        produce_raw(settings, topic, b"k", b"not json", [("ce_type", b"x")])
        produce_raw(settings, topic, b"k", b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"1"),
                                                  ("ce_source", b"/x"), ("ce_type", b"p2p.other.v9")])
        env = produce(settings, _cancelled("REQ-AFTER"))
        wait_until(lambda: len(r.outcomes) == 3, 20, message="three settled")
    assert r.outcomes.count("processed") == 1
    assert "ignored" in r.outcomes and "dead_lettered" in r.outcomes
    with platform_db.session() as s:
        assert s.execute(select(widgets.c.id)).scalars().all() == [env.id]


def _batches(name: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("p2p_consumer_batches_total",
                                      {"consumer": name, "outcome": outcome})
    return value or 0.0


def test_a_backlog_is_settled_in_batches_with_the_same_effects(settings, platform_db):
    # Waiting before the consumer starts: its first poll brings them together.
    envs = [produce(settings, _cancelled(f"REQ-B{n}")) for n in range(30)]
    again = produce(settings, _cancelled("REQ-B0"), event_id=envs[0].id)  # same ce_id, same batch
    with _Runner(settings, platform_db, {TYPE: _store_widget}, name="platform.batch") as r:
        wait_until(lambda: len(r.outcomes) == 31, 30, message="all settled")
    assert sorted(r.outcomes) == ["duplicate"] + ["processed"] * 30
    assert again.id == envs[0].id
    assert _count(platform_db, widgets) == 30
    assert _count(platform_db, inbox) == 30
    assert _batches("platform.batch", "committed") >= 1
    assert _batches("platform.batch", "fell_back") == 0


def test_a_poison_event_in_a_batch_rolls_it_back_and_the_rest_is_settled_one_by_one(settings, platform_db):
    seen: list[str] = []

    def picky(session, event, envelope):  # noqa: ANN001
        seen.append(event.requisition_id)
        _store_widget(session, event, envelope)
        if event.requisition_id == "POISON":
            raise RuntimeError  # no message at all: the fallback must not trip over that

    # One key, so one partition and a fixed order: good, poison, good.
    envs = [produce(settings, _cancelled(name), key="one-flow")
            for name in ("BEFORE", "POISON", "AFTER")]
    with _Runner(settings, platform_db, {TYPE: picky}, name="platform.poison") as r:
        wait_until(lambda: len(r.outcomes) == 3, 30, message="all settled")
    assert r.outcomes == ["processed", "dead_lettered", "processed"]
    assert _batches("platform.poison", "fell_back") == 1
    with platform_db.session() as s:
        # BEFORE's widget from the rolled-back batch is gone; the one-by-one pass wrote it once.
        assert sorted(s.execute(select(widgets.c.id)).scalars()) == sorted([envs[0].id, envs[2].id])
    # The batch try, then one by one in order: BEFORE, POISON × attempts, AFTER.
    assert seen == (["BEFORE", "POISON", "BEFORE"] + ["POISON"] * settings.consumer_max_attempts
                    + ["AFTER"])


CRASHER = Path(__file__).with_name("crash_consumer.py")


def _run_crasher(settings, db_url: str, mode: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    env = dict(os.environ, P2P_DATABASE_URL=settings.database_url,
               P2P_KAFKA_BOOTSTRAP=settings.kafka_bootstrap, P2P_TOPIC_PREFIX=settings.topic_prefix,
               CRASH_DB_URL=db_url, CRASH_MODE=mode)
    return subprocess.run([sys.executable, str(CRASHER)], env=env, capture_output=True, text=True,
                          timeout=90, cwd=Path(__file__).resolve().parents[3])


def test_kill_9_after_db_commit_before_offset_commit_redelivers_with_one_effect(settings, platform_db):
    env = produce(settings, _cancelled("REQ-CRASH"))
    url = platform_db.url
    first = _run_crasher(settings, url, "crash-after-commit")
    assert first.returncode == -9, first.stderr[-2000:]
    assert _count(platform_db, widgets) == 1  # the effect committed before the kill
    second = _run_crasher(settings, url, "drain")
    assert second.returncode == 0, second.stderr[-2000:]
    # The offset was never committed, so the event came again and the inbox absorbed it.
    assert f"{env.id} duplicate" in second.stdout
    assert _count(platform_db, widgets) == 1
