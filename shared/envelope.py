"""CloudEvents 1.0 binary content mode over Kafka (the CloudEvents Kafka protocol binding).

Attributes travel as `ce_*` headers, the record value is the JSON `data`, the record key is the
aggregate id. `correlationid` and `causationid` are extension attributes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
_FORMAT = JSONFormat()


class EnvelopeError(ValueError):
    """A record that is not a valid CloudEvent in binary mode."""


@dataclass(frozen=True)
class Envelope:
    type: str
    source: str
    subject: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    causation_id: str | None = None

    def to_kafka(self, data_json: bytes | None = None) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
        """(key, headers, value) for a Kafka record. `data_json` skips re-serialising data."""
        attributes: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "subject": self.subject,
            "datacontenttype": CONTENT_TYPE,
        }
        if self.correlation_id:
            attributes["correlationid"] = self.correlation_id
        if self.causation_id:
            attributes["causationid"] = self.causation_id
        message = ce_kafka.to_binary(CloudEvent(attributes, self.data), _FORMAT,
                                     key_mapper=lambda _e: self.subject)
        value = data_json if data_json is not None else message.value
        return self.subject.encode(), list(message.headers.items()), value

    @classmethod
    def from_kafka(cls, key: bytes | None, headers: list[tuple[str, bytes]], value: bytes) -> "Envelope":
        try:
            message = ce_kafka.KafkaMessage(headers=dict(headers or []), key=key, value=value)
            event = ce_kafka.from_binary(message, _FORMAT)
        except Exception as exc:  # the SDK raises several unrelated types
            raise EnvelopeError(f"not a binary-mode CloudEvent: {exc}") from exc
        data = event.get_data()
        if isinstance(data, (bytes, str)):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise EnvelopeError(f"data is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise EnvelopeError("data is not a JSON object")
        attrs = event.get_attributes()
        time = attrs.get("time") or datetime.now(UTC)
        return cls(
            type=attrs["type"],
            source=attrs["source"],
            subject=attrs.get("subject") or (key.decode() if key else ""),
            data=data,
            id=attrs["id"],
            time=time,
            correlation_id=attrs.get("correlationid"),
            causation_id=attrs.get("causationid"),
        )
