"""Event contracts: envelope round trip, decimals as strings, AsyncAPI document free of drift."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from shared.asyncapi import render
from shared.contracts import REGISTRY
from shared.contracts.requisitions import GoodsReceiptRecorded
from shared.envelope import Envelope, EnvelopeError
from shared import topics

ASYNCAPI = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "asyncapi.yaml"


def test_every_type_follows_the_naming_scheme_and_lives_on_a_known_topic():
    assert len(REGISTRY) == 16
    for ce_type, model in REGISTRY.items():
        parts = ce_type.split(".")
        assert parts[0] == "p2p" and parts[-1].startswith("v") and len(parts) == 4, ce_type
        assert model.topic in topics.ALL


def test_envelope_round_trip_keeps_attributes_and_decimal_strings():
    event = GoodsReceiptRecorded(receipt_id="R1", po_id="PO-ID", po_number="PO-000001",
                                 lines=[{"line_no": 1, "quantity": Decimal("2.50")}],
                                 received_at=datetime(2026, 1, 2, tzinfo=UTC))
    env = Envelope(type=event.ce_type, source="/p2p/requisitions", subject=event.key(),
                   data=event.model_dump(mode="json"), correlation_id="REQ-1", causation_id="c-0")
    key, headers, value = env.to_kafka()
    assert key == b"PO-ID" and b'"quantity":"2.50"' in value.replace(b" ", b"")
    back = Envelope.from_kafka(key, headers, value)
    assert (back.id, back.type, back.subject, back.correlation_id, back.causation_id) == (
        env.id, env.type, "PO-ID", "REQ-1", "c-0")
    assert GoodsReceiptRecorded.model_validate(back.data) == event


def test_consumers_ignore_unknown_fields():
    data = {"receipt_id": "R", "po_id": "P", "po_number": "PO-1", "lines": [],
            "received_at": "2026-01-01T00:00:00Z", "added_later": {"x": 1}}
    assert GoodsReceiptRecorded.model_validate(data).po_id == "P"


def test_envelope_without_required_attributes_is_rejected():
    with pytest.raises(EnvelopeError):
        Envelope.from_kafka(b"k", [("ce_type", b"x")], b"{}")


def test_checked_in_asyncapi_document_matches_the_contracts():
    assert ASYNCAPI.read_text() == render(), "contracts changed: run `p2p asyncapi --write`"
