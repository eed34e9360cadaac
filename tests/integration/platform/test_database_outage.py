"""Consumer runner during a database outage: it waits for the database instead of spending its
attempts, so a valid event is never parked in the DLQ because PostgreSQL was restarting."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from shared.messaging import inbox
from tests.integration.platform.conftest import widgets
from tests.integration.platform.test_consumer import TYPE, _cancelled, _Runner, _store_widget
from tests.support.kafka import TopicReader, produce
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration


def test_handler_waits_out_a_database_outage_longer_than_its_attempts(settings, platform_db):
    outage = settings.consumer_max_attempts + 3  # more failures than attempts
    calls = []

    def during_outage(session, event, envelope):
        calls.append(1)
        if len(calls) <= outage:  # what SQLAlchemy raises while the server restarts
            raise OperationalError("SELECT 1", {}, psycopg.OperationalError(
                "connection failed: FATAL: the database system is starting up"))
        _store_widget(session, event, envelope)

    with _Runner(settings, platform_db, {TYPE: during_outage}) as r:
        env = produce(settings, _cancelled("REQ-OUTAGE"))
        wait_until(lambda: r.outcomes, 60, message="the event settled")
    assert r.outcomes == ["processed"]
    assert len(calls) == outage + 1
    with platform_db.session() as s:
        assert s.execute(select(widgets.c.id)).scalars().all() == [env.id]
        assert s.execute(select(inbox.c.event_id)).scalars().all() == [env.id]
    reader = TopicReader(settings, settings.topic("p2p.requisitions") + ".dlq")
    assert reader.wait_for(1, timeout=2) == []  # nothing parked
    reader.close()
