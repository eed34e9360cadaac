"""Consumer runner: inbox dedupe in the handler's transaction, offsets after the DB commit.

For each record: parse the CloudEvent, look up the handler by `ce_type` (unknown types are
skipped), then in ONE transaction insert `(consumer, ce_id)` into the inbox and run the handler.
A duplicate insert means the effect already happened: skip. A failing handler is retried with
backoff; after `max_attempts` the record is copied to `<topic>.dlq` with error headers and the
consumer moves on. Offsets are committed only after every record of a poll is settled, so a
crash anywhere leads to redelivery, which the inbox turns into a no-op.

Batches: the records of a poll are first tried together, up to `consumer_batch_size` of them in
one transaction (one inbox insert, one commit), in their delivery order. Under load that is most
of the cost of an event saved. If anything in the batch fails, or waits on a lock for longer than
`BATCH_LOCK_TIMEOUT`, the whole transaction rolls back and the same records are settled one by
one as above, so a poison event still costs only itself, in order. Effects outside the
database must therefore bear being repeated (approvals' Temporal calls are idempotent); a
subscription whose handlers' effects do not opts out with `batch=False`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared import topics as topic_names
from shared.contracts import Contract, model_for
from shared.db import database_unavailable
from shared.envelope import Envelope, EnvelopeError
from shared.kafka import make_consumer, make_producer
from shared.logs import correlation_id_var, event_id_var
from shared.messaging import inbox
from shared.metrics import CONSUMER_BATCHES, CONSUMER_LAG, EVENTS_CONSUMED
from shared.outbox import set_current_cause
from shared.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[Session, Contract, Envelope], None]

# How long a handler waits for an unavailable database before the wait counts as an attempt.
DB_OUTAGE_WAIT_SECONDS = 600.0
# A batch holds its locks until it commits; rather than queue behind another batch (or deadlock
# with one: two batches may lock the same flows in different orders) it gives up and goes one
# record at a time.
BATCH_LOCK_TIMEOUT = "200ms"


class _Unsettled(Exception):
    """Stopping while the database is away: leave the record uncommitted, to be redelivered."""


@dataclass(frozen=True)
class Subscription:
    """Which event types a consumer handles, and how."""

    handlers: dict[str, Handler]  # ce_type -> handler(session, event, envelope)
    batch: bool = True  # False when a handler has effects a rollback cannot undo

    @property
    def topics(self) -> list[str]:
        found = set()
        for ce_type in self.handlers:
            model = model_for(ce_type)
            if model is None:
                raise ValueError(f"no contract for {ce_type}")
            found.add(model.topic)
        return sorted(found)


@dataclass(frozen=True)
class _Work:
    """A record that parsed, validated and has a handler: what is left is database work."""

    record: ConsumerRecord
    topic: str  # logical
    envelope: Envelope
    event: Contract
    handler: Handler


@contextlib.contextmanager
def _handling(envelope: Envelope) -> Iterator[None]:
    """Logs and events written meanwhile carry this event's correlation and causation."""
    correlation_token = correlation_id_var.set(envelope.correlation_id)
    event_token = event_id_var.set(envelope.id)
    set_current_cause(envelope)
    try:
        yield
    finally:
        set_current_cause(None)
        correlation_id_var.reset(correlation_token)
        event_id_var.reset(event_token)


class ConsumerRunner:
    def __init__(
        self,
        name: str,
        subscription: Subscription,
        sessions,  # noqa: ANN001 - sessionmaker
        settings: Settings,
    ) -> None:
        self.name = name  # also the consumer group and the inbox's consumer column
        self.subscription = subscription
        self.sessions = sessions
        self.settings = settings
        self.group_id = f"{settings.topic_prefix}{name}"
        self.max_attempts = settings.consumer_max_attempts
        self._dlq_producer: KafkaProducer | None = None
        self._logical = {settings.topic(t): t for t in subscription.topics}
        self.ready = threading.Event()  # set once partitions are assigned
        self._stop = threading.Event()  # the run loop's stop event, once it runs

    # -- records in, outcomes out -----------------------------------------------------------
    def settle(self, records: list[ConsumerRecord]) -> list[str]:
        """Settle records in delivery order (together when possible); an outcome per record."""
        if not self.subscription.batch or self.settings.consumer_batch_size <= 1:
            return [self.handle_record(record) for record in records]
        outcomes: list[str] = []
        pending: list[_Work] = []

        def flush() -> None:
            outcomes.extend(self._settle_works(pending))
            pending.clear()

        for record in records:
            work = self._prepare(record)
            if isinstance(work, str):
                outcomes.append(work)  # dead-lettered or ignored: no database work
                continue
            pending.append(work)
            if len(pending) >= self.settings.consumer_batch_size:
                flush()
        flush()
        return outcomes

    def handle_record(self, record: ConsumerRecord) -> str:
        """Settle one record on its own; returns the outcome label."""
        work = self._prepare(record)
        return work if isinstance(work, str) else self._settle_one(work)

    def _prepare(self, record: ConsumerRecord) -> _Work | str:
        """Parse and validate; what cannot be handled is settled here (DLQ or ignored)."""
        topic = self._logical.get(record.topic, record.topic)
        try:
            envelope = Envelope.from_kafka(record.key, record.headers, record.value)
        except EnvelopeError as exc:
            self._dead_letter(record, f"unparseable: {exc}", 1)
            EVENTS_CONSUMED.labels(topic, "unknown", "dead_lettered").inc()
            return "dead_lettered"
        handler = self.subscription.handlers.get(envelope.type)
        model = model_for(envelope.type)
        if handler is None or model is None:
            EVENTS_CONSUMED.labels(topic, envelope.type, "ignored").inc()
            return "ignored"
        try:
            event = model.model_validate(envelope.data)
        except Exception as exc:  # a payload that breaks its contract never gets better
            log.error("event %s breaks its contract: %s", envelope.id, exc)
            self._dead_letter(record, f"contract violation: {exc}", 1)
            EVENTS_CONSUMED.labels(topic, envelope.type, "dead_lettered").inc()
            return "dead_lettered"
        return _Work(record, topic, envelope, event, handler)

    def _settle_works(self, works: list[_Work]) -> list[str]:
        if not works:
            return []
        if len(works) > 1:
            outcomes = self._settle_together(works)
            if outcomes is not None:
                return outcomes
        return [self._settle_one(work) for work in works]

    def _settle_together(self, works: list[_Work]) -> list[str] | None:
        """All in one transaction; None (and nothing committed) if any of them fails."""
        outcomes: list[str] = []
        try:
            with self.sessions() as session, session.begin():
                session.execute(text(f"SET LOCAL lock_timeout = '{BATCH_LOCK_TIMEOUT}'"))
                fresh = self._claim(session, [w.envelope for w in works])
                for work in works:
                    if work.envelope.id not in fresh:
                        outcomes.append("duplicate")
                        continue
                    fresh.discard(work.envelope.id)  # the same event twice in one batch
                    with _handling(work.envelope):
                        work.handler(session, work.event, work.envelope)
                    outcomes.append("processed")
        except Exception as exc:
            first_line = (str(exc).splitlines() or [""])[0][:200]
            log.info("batch of %d %s events rolled back (%s: %s); settling them one by one",
                     len(works), self.name, type(exc).__name__, first_line)
            CONSUMER_BATCHES.labels(self.name, "fell_back").inc()
            return None
        CONSUMER_BATCHES.labels(self.name, "committed").inc()
        for work, outcome in zip(works, outcomes, strict=True):
            EVENTS_CONSUMED.labels(work.topic, work.envelope.type, outcome).inc()
        return outcomes

    def _claim(self, session: Session, envelopes: list[Envelope]) -> set[str]:
        """Record the events in the inbox; returns the ids not seen before (one statement)."""
        return set(session.execute(
            pg_insert(inbox)
            .values([{"consumer": self.name, "event_id": e.id, "event_type": e.type}
                     for e in envelopes])
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        ).scalars())

    def _settle_one(self, work: _Work) -> str:
        with _handling(work.envelope):
            outcome, error, attempts = self._process_with_retries(work)
        if outcome == "failed":
            self._dead_letter(work.record, error, attempts)
            outcome = "dead_lettered"
        EVENTS_CONSUMED.labels(work.topic, work.envelope.type, outcome).inc()
        return outcome

    def _process_with_retries(self, work: _Work):  # noqa: ANN202
        envelope = work.envelope
        error = ""
        attempt = 0
        outage_deadline: float | None = None
        while attempt < self.max_attempts:
            attempt += 1
            try:
                with self.sessions() as session, session.begin():
                    if not self._claim(session, [envelope]):
                        return "duplicate", "", attempt
                    work.handler(session, work.event, envelope)
                return "processed", "", attempt
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if database_unavailable(exc):
                    # An outage (PostgreSQL restarting, say) is not the event's fault: wait for
                    # the database instead of spending attempts and parking a valid event.
                    now = time.monotonic()
                    outage_deadline = outage_deadline or now + DB_OUTAGE_WAIT_SECONDS
                    if now < outage_deadline:
                        if self._stop.is_set():
                            raise _Unsettled(envelope.id) from exc
                        log.warning("database unavailable while handling %s; waiting: %s",
                                    envelope.type, error)
                        attempt -= 1
                        self._stop.wait(0.5)
                        continue
                log.warning("handler for %s failed (attempt %d/%d): %s",
                            envelope.type, attempt, self.max_attempts, error)
                if attempt < self.max_attempts:
                    time.sleep(self.settings.consumer_retry_backoff_seconds * 2 ** (attempt - 1))
        return "failed", error, self.max_attempts

    def _dead_letter(self, record: ConsumerRecord, error: str, attempts: int) -> None:
        if self._dlq_producer is None:
            self._dlq_producer = make_producer(self.settings, f"{self.name}-dlq")
        headers = [(k, v) for k, v in (record.headers or []) if not k.startswith("p2p_")]
        headers += [
            ("p2p_error", error[:2000].encode()),
            ("p2p_attempts", str(attempts).encode()),
            ("p2p_consumer", self.name.encode()),
        ]
        self._dlq_producer.send(
            topic_names.dlq(record.topic), key=record.key, value=record.value, headers=headers
        ).get(timeout=30)
        log.error("parked %s[%d]@%d in the DLQ: %s", record.topic, record.partition,
                  record.offset, error)

    # -- the loop --------------------------------------------------------------------------
    def _update_lag(self, consumer: KafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = consumer.position(tp)
            CONSUMER_LAG.labels(self._logical.get(tp.topic, tp.topic), str(tp.partition)).set(
                max(high - position, 0)
            )

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        consumer: KafkaConsumer | None = None
        backoff = 0.5
        last_lag = 0.0
        while not stop.is_set():
            try:
                if consumer is None:
                    consumer = make_consumer(self.settings, self.group_id, self._logical)
                batches = consumer.poll(timeout_ms=200)
                if consumer.assignment():
                    self.ready.set()
                if batches:
                    self.settle([record for records in batches.values() for record in records])
                    consumer.commit()
                now = time.monotonic()
                if now - last_lag > 2.0:
                    last_lag = now
                    self._update_lag(consumer)
                backoff = 0.5
            except Exception as exc:
                log.warning("consumer %s: %s; reconnecting in %.1fs", self.name, exc, backoff)
                if consumer is not None:
                    try:
                        consumer.close(autocommit=False)
                    except Exception:
                        log.debug("closing consumer failed", exc_info=True)
                    consumer = None
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        if consumer is not None:
            consumer.close(autocommit=False)
        if self._dlq_producer is not None:
            self._dlq_producer.close(timeout=2)
