"""Kafka clients configured once: idempotent producers, manual-commit consumers, topic admin."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from shared import topics
from shared.settings import Settings

log = logging.getLogger(__name__)


def bootstrap(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]


def make_producer(settings: Settings, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap(settings),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_in_flight_requests_per_connection=5,
        # Fail fast while the broker is down so the relay backs off instead of blocking.
        max_block_ms=5000,
        request_timeout_ms=10000,
        delivery_timeout_ms=30000,
        allow_auto_create_topics=False,
    )


def make_consumer(settings: Settings, group_id: str, topic_names: Iterable[str]) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap(settings),
        group_id=group_id,
        client_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Joins take ~3 s instead of ~23 s with these, and a dead member is noticed quickly.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=200,
        fetch_max_wait_ms=100,
        allow_auto_create_topics=False,
    )
    consumer.subscribe(list(topic_names))
    return consumer


def physical_topics(settings: Settings, with_dlq: bool = True) -> list[str]:
    names = [settings.topic(t) for t in topics.ALL]
    if with_dlq:
        names += [topics.dlq(n) for n in names]
    return names


def create_topics(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Create the project's topics (and DLQs) with the configured partition count; idempotent."""
    wanted = list(names) if names is not None else physical_topics(settings)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(settings), client_id="p2p-admin",
                             request_timeout_ms=10000)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        for name in missing:
            partitions = 1 if name.endswith(".dlq") else settings.topic_partitions
            try:
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        admin.close()


def broker_reachable(settings: Settings, timeout_s: float = 2.0) -> None:
    """Raise unless a broker answers a metadata request."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(settings), client_id="p2p-readyz",
                             request_timeout_ms=int(timeout_s * 1000),
                             bootstrap_timeout_ms=int(timeout_s * 1000))
    try:
        admin.list_topics()
    finally:
        admin.close()
