"""Produce and read CloudEvents on the test broker, the way another service would."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared.contracts import Contract
from shared.envelope import Envelope
from shared.kafka import bootstrap
from shared.settings import Settings


def produce(settings: Settings, event: Contract, *, source: str = "/p2p/test",
            event_id: str | None = None, correlation_id: str | None = None,
            topic: str | None = None, key: str | None = None) -> Envelope:
    """Publish `event` as a binary-mode CloudEvent on its (prefixed) topic; returns the envelope."""
    env = Envelope(type=event.ce_type, source=source, subject=key or event.key(),
                   data=event.model_dump(mode="json"), id=event_id or str(uuid.uuid4()),
                   time=datetime.now(UTC), correlation_id=correlation_id)
    producer = KafkaProducer(bootstrap_servers=bootstrap(settings), acks="all")
    try:
        key, headers, value = env.to_kafka()
        producer.send(topic or settings.topic(event.topic), key=key, value=value,
                      headers=headers).get(timeout=10)
    finally:
        producer.close()
    return env


def produce_raw(settings: Settings, topic: str, key: bytes, value: bytes,
                headers: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap(settings), acks="all")
    try:
        producer.send(topic, key=key, value=value, headers=headers).get(timeout=10)
    finally:
        producer.close()


class TopicReader:
    """Reads a whole topic from the beginning, without a consumer group."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap(settings),
                                      enable_auto_commit=False, consumer_timeout_ms=200)
        partitions = None
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:
            partitions = self.consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.1)
        if not partitions:
            raise AssertionError(f"topic {topic} does not exist")
        self.tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning(*self.tps)
        self.records: list = []

    def poll(self) -> list:
        for batch in self.consumer.poll(timeout_ms=200).values():
            self.records.extend(batch)
        return self.records

    def envelopes(self) -> list[Envelope]:
        return [Envelope.from_kafka(r.key, r.headers, r.value) for r in self.poll()]

    def wait_for(self, count: int, timeout: float = 20.0, ce_type: str | None = None) -> list[Envelope]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.envelopes() if ce_type is None or e.type == ce_type]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        self.consumer.close()
