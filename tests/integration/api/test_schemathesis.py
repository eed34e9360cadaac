"""Schemathesis against each service's own OpenAPI document: no 5xx, responses as documented.

Every operation gets generated requests that fit the schema (positive) and requests that do
not (negative), sent with a token holding every role (authorisation is the matrix test's
business). Each response must not be a 5xx, must carry a documented status and content type,
and its body must validate against the documented schema (errors: problem+json).
Run with `-s` to see how many requests each service received.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.conftest import ALL_ROLES, SERVICES, requests_session

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25  # per operation and generation mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
BASE_URL = "http://testserver"


def _fuzz_operation(operation, mode: GenerationMode, session, sent: Counter) -> str | None:
    """Runs one operation in one mode; returns the first failure, or None."""
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        response = case.call(base_url=BASE_URL, session=session, headers=ALL_ROLES)
        sent[label] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to negate (an operation without parameters or body)
        return None
    except (AssertionError, FailureGroup, ExceptionGroup) as exc:  # failed checks, with the request
        return f"{label} [{mode.value}]: {exc}"
    return None


@pytest.mark.parametrize("name", SERVICES)
def test_generated_requests_get_no_5xx_and_documented_responses(start, name: str) -> None:
    with start(name) as svc:
        document = svc.client.get("/openapi.json").json()
        schema = schemathesis.openapi.from_dict(document)
        session = requests_session(svc.client)
        sent: Counter[str] = Counter()
        failures = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations, f"{name}: the OpenAPI document lists no operation"
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failure = _fuzz_operation(operation, mode, session, sent)
                if failure:
                    failures.append(failure)
    print(f"\nschemathesis {name}: {sum(sent.values())} requests over {len(operations)} "
          f"operations ({', '.join(f'{k} {v}' for k, v in sorted(sent.items()))})")
    assert not failures, f"{name}: {len(failures)} failing operation(s):\n\n" + "\n\n".join(failures)
