"""AsyncAPI 3.0 document generated from the event contracts (checked in, drift-tested)."""

from __future__ import annotations

from typing import Any

import yaml

from shared import topics
from shared.contracts import REGISTRY

HEADERS_SCHEMA = {
    "type": "object",
    "description": "CloudEvents 1.0 binary content mode (Kafka protocol binding)",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject",
                 "content-type"],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {"type": "string", "format": "uuid"},
        "ce_source": {"type": "string", "pattern": "^/p2p/"},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "aggregate id, also the record key"},
        "ce_correlationid": {"type": "string"},
        "ce_causationid": {"type": "string"},
        "content-type": {"const": "application/json"},
    },
}


def _producer(model: type) -> str:
    return model.__module__.rsplit(".", 1)[-1]


def build_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for ce_type, model in sorted(REGISTRY.items()):
        name = model.__name__
        schema = model.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
        for def_name, definition in schema.pop("$defs", {}).items():
            schemas[def_name] = definition
        schemas[name] = schema
        messages[name] = {
            "name": ce_type,
            "title": name,
            "summary": (model.__doc__ or "").strip() or name,
            "contentType": "application/json",
            "headers": HEADERS_SCHEMA,
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"kafka": {"key": {"type": "string",
                                           "description": f"{model.key_field}"}}},
        }
        channel = model.topic
        channels.setdefault(channel, {"address": channel, "messages": {}})
        channels[channel]["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        op = f"publish{name}"
        operations[op] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"Sent by the {_producer(model)} service",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
    for topic in topics.ALL:
        channels.setdefault(topic, {"address": topic, "messages": {}})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "P2P automation events",
            "version": "1.0.0",
            "description": "Events between the P2P services. Types are versioned "
                           "`p2p.<aggregate>.<event>.v<major>`; consumers ignore unknown fields "
                           "and types. Dead letters go to `<topic>.dlq` with headers "
                           "`p2p_error`, `p2p_attempts`, `p2p_consumer`.",
        },
        "defaultContentType": "application/json",
        "channels": dict(sorted(channels.items())),
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def render() -> str:
    return yaml.safe_dump(build_document(), sort_keys=False, width=100)
