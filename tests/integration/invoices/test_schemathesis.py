"""Schemathesis over every operation of the OpenAPI document: no request gets a 5xx."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.auth import bearer

pytestmark = pytest.mark.integration


def test_no_operation_answers_5xx(invoices):
    schema = schemathesis.openapi.from_asgi("/openapi.json", invoices.client.app)
    headers = bearer("clara", "ap_clerk", "integration")
    statuses: Counter[tuple[str, int]] = Counter()
    failures = []
    for result in schema.get_all_operations():
        _explore(result.ok(), headers, statuses, failures)
    assert not failures, failures[:5]
    # The generated requests reached the handlers, not only the auth or routing layers.
    assert any(status == 422 for (_, status) in statuses)
    assert any(op.startswith("GET /invoices") and status == 200 for (op, status) in statuses)


def _explore(operation, headers, statuses, failures) -> None:
    name = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def call(case) -> None:
        response = case.call(headers=headers)
        statuses[(name, response.status_code)] += 1
        if response.status_code >= 500:
            failures.append((name, case.query, case.path_parameters, response.text[:300]))

    call()
