"""Transactional outbox: events commit with the state change, a relay publishes them.

`Outbox.add()` writes a row in the caller's transaction. `OutboxRelay` claims unpublished rows
(`FOR UPDATE SKIP LOCKED`), publishes them through an idempotent `acks=all` producer, and marks
them published in the same transaction. If the relay dies between publishing and marking, the
rows are published again: consumers dedupe by `ce_id`, so the effect stays exactly-once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import Row, event, func, insert, select, text, update
from sqlalchemy.orm import Session

from shared.contracts.base import Contract
from shared.envelope import Envelope
from shared.kafka import make_producer
from shared.logs import correlation_id_var
from shared.messaging import outbox
from shared.metrics import EVENTS_PUBLISHED, OUTBOX_PENDING
from shared.settings import Settings

log = logging.getLogger(__name__)

# One relay at a time per database publishes: rows of one key then leave in commit order even
# when several replicas run a relay. The others wait as hot standbys.
_RELAY_LOCK_ID = 0x50325021

_current_cause: threading.local = threading.local()

# One statement object, parameters per call: SQLAlchemy compiles it once (values() would build
# and cache-key a new statement for every event).
_INSERT = insert(outbox)


def set_current_cause(envelope: Envelope | None) -> None:
    """Called by the consumer runner: events written while handling inherit its trace ids."""
    _current_cause.envelope = envelope


def current_cause() -> Envelope | None:
    return getattr(_current_cause, "envelope", None)


class Outbox:
    """Writes events of one service into its outbox table, inside the caller's transaction."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.source = f"/p2p/{service}"
        self.wake = threading.Event()

    def add(
        self,
        session: Session,
        event_: Contract,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: str | None = None,
    ) -> str:
        cause = current_cause()
        if correlation_id is None:
            correlation_id = (cause.correlation_id if cause else None) or correlation_id_var.get()
        if causation_id is None and cause is not None:
            causation_id = cause.id
        ce_id = event_id or str(uuid.uuid4())
        session.execute(_INSERT, {
            "topic": event_.topic,
            "message_key": event_.key(),
            "event_id": ce_id,
            "event_type": event_.ce_type,
            "source": self.source,
            "occurred_at": datetime.now(UTC),
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "payload": event_.model_dump_json(),
        })
        session.info.setdefault("p2p_outboxes", set()).add(self)
        return ce_id


@event.listens_for(Session, "after_commit")
def _wake_relays(session: Session) -> None:
    # Publish right after the commit instead of waiting for the next poll.
    for ob in session.info.pop("p2p_outboxes", ()):
        ob.wake.set()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("p2p_outboxes", None)


# Called in the relay's transaction once the broker acknowledged a batch, before the rows are
# marked published: a service can record that its events left (a rollback republishes them).
PublishedHook = Callable[[Session, Sequence[Row]], None]


class OutboxRelay:
    def __init__(self, outbox_: Outbox, sessions, settings: Settings,  # noqa: ANN001
                 on_published: PublishedHook | None = None) -> None:
        self.outbox = outbox_
        self.sessions = sessions
        self.settings = settings
        self.on_published = on_published
        self.batch_size = settings.relay_batch_size
        self._producer: KafkaProducer | None = None
        self._last_pending_update = 0.0

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = make_producer(self.settings, f"{self.outbox.service}-relay")
        return self._producer

    def _drop_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:  # closing a broken producer may fail in several ways
                log.debug("closing producer failed", exc_info=True)
            self._producer = None

    def publish_batch(self) -> int:
        """Publish up to `batch_size` rows; returns how many. Raises on broker errors."""
        with self.sessions() as session, session.begin():
            got_lock = session.execute(
                text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _RELAY_LOCK_ID}
            ).scalar()
            if not got_lock:
                return 0
            rows = session.execute(
                select(outbox)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            producer = self._get_producer()
            futures = []
            for row in rows:
                env = Envelope(
                    type=row.event_type,
                    source=row.source,
                    subject=row.message_key,
                    data={},
                    id=row.event_id,
                    time=row.occurred_at,
                    correlation_id=row.correlation_id,
                    causation_id=row.causation_id,
                )
                key, headers, value = env.to_kafka(row.payload.encode())
                futures.append(
                    producer.send(self.settings.topic(row.topic), key=key, value=value, headers=headers)
                )
            producer.flush(timeout=30)
            for f in futures:
                f.get(timeout=30)  # raises the delivery error, if any
            if self.on_published is not None:
                self.on_published(session, rows)
            session.execute(
                update(outbox)
                .where(outbox.c.id.in_([r.id for r in rows]))
                .values(published_at=func.now())
            )
        for row in rows:
            EVENTS_PUBLISHED.labels(row.topic, row.event_type).inc()
        return len(rows)

    def update_pending_gauge(self) -> None:
        with self.sessions() as session:
            pending = session.execute(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()
        OUTBOX_PENDING.set(pending)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            # Cleared before reading, so a commit that lands during the read still wakes us.
            self.outbox.wake.clear()
            try:
                n = self.publish_batch()
                backoff = 0.1
            except (KafkaError, TimeoutError) as exc:
                log.warning("outbox relay: broker unavailable (%s); retrying in %.1fs", exc, backoff)
                self._drop_producer()
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                self._drop_producer()
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            now = time.monotonic()
            if now - self._last_pending_update > 2.0:
                self._last_pending_update = now
                try:
                    self.update_pending_gauge()
                except Exception:
                    log.debug("could not read outbox backlog", exc_info=True)
            if n == 0:
                # Wait for a commit that wrote events, or poll: other processes share the table.
                self.outbox.wake.wait(self.settings.relay_idle_seconds)
        self._drop_producer()
