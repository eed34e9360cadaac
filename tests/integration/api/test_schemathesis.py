"""Schemathesis against each service's own OpenAPI document: no 5xx, responses as documented.

Every operation gets generated requests that fit the schema (positive) and requests that do
not (negative), sent with a token holding every role (authorisation is the matrix test's
business). Each response must not be a 5xx, must carry a documented status and content type,
and its body must validate against the documented schema (errors: problem+json); a request
that breaks the schema must be refused with a 4xx.
Two deterministic sweeps follow: hostile values (NUL, 5000 characters, SQL, ...) in every path
and query parameter of every operation, and NUL / lone surrogates in every string and key of a
valid body of each storing write: the answer must be a 2xx or a 4xx problem, never a 5xx.
Run with `-s` to see how many requests each service received.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from shared.auth import ROLES
from shared.settings import REPO_ROOT
from tests.integration.api.conftest import ALL_ROLES, real_objects, requests_session
from tests.support.auth import bearer
from tests.unit.invoices.documents import native

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25  # per operation and generation mode
# CI replays the same examples every run (a red build names a reproducible request); a
# developer's run explores new ones each time.
DERANDOMIZE = os.environ.get("CI", "").lower() == "true"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]
BASE_URL = "http://testserver"
OWNER = {"requisitions": "alice", "approvals": "bob"}  # who owns / is assigned the real objects


def _fuzz_operation(operation, mode: GenerationMode, session, sent: Counter, spent: Counter,
                    *, headers: dict[str, str] = ALL_ROLES,
                    path_parameters: dict[str, str] | None = None) -> str | None:
    """Runs one operation in one mode; returns the first failure, or None."""
    label = f"{operation.method.upper()} {operation.path}"
    kind = mode.value + (", real ids" if path_parameters else "")

    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         derandomize=DERANDOMIZE,
                         phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case) -> None:
        started = time.perf_counter()
        response = case.call(base_url=BASE_URL, session=session, headers=headers)
        spent["calls"] += time.perf_counter() - started
        sent[label] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to negate (an operation without parameters or body)
        return None
    except (AssertionError, FailureGroup, ExceptionGroup) as exc:  # failed checks, with the request
        return f"{label} [{kind}]: {exc}"
    return None


def test_generated_requests_get_no_5xx_and_documented_responses(service) -> None:
    name, svc = service
    schema = schemathesis.openapi.from_dict(svc.client.get("/openapi.json").json())
    session = requests_session(svc.client)
    sent: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    started = time.perf_counter()
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{name}: the OpenAPI document lists no operation"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _fuzz_operation(operation, mode, session, sent, spent)
            if failure:
                failures.append(failure)
    # Again with real objects in the path (alice's requisition and PO, bob's task) and their
    # owner's token, so generated bodies reach the code behind the 404.
    ids, owner = real_objects(name, svc), bearer(OWNER.get(name, "fuzzer"), *ROLES)
    for operation in operations:
        params = re.findall(r"{(\w+)}", operation.path)
        if params and all(p in ids for p in params):
            failure = _fuzz_operation(operation, GenerationMode.POSITIVE, session, sent, spent,
                                      headers=owner, path_parameters={p: ids[p] for p in params})
            if failure:
                failures.append(failure)
    elapsed = time.perf_counter() - started
    print(f"\nschemathesis {name}: {sum(sent.values())} requests over {len(operations)} "
          f"operations in {elapsed:.0f}s ({spent['calls']:.0f}s waiting for responses): "
          + ", ".join(f"{k} {v}" for k, v in sorted(sent.items())))
    assert not failures, f"{name}: {len(failures)} failing operation(s):\n\n" + "\n\n".join(failures)


# -- the same, deterministic: hostile values in every path and query parameter -------------------
HOSTILE = {
    "NUL": "po\x00x",
    "5000 chars": "x" * 5000,
    "SQL": "' OR 1=1 --",
    "noncharacter": "\ud7ff\uffff",
    "percent": "%",
    "dot-dot": "..",
}
# Bodies valid enough to get past parsing, so the hostile path parameter reaches the handler.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/requisitions/{req_id}"): {"title": "x"},
    ("POST", "/requisitions/{req_id}/cancel"): {},
    ("POST", "/purchase-orders/{ref}/receipts"): {"lines": [{"line_no": 1, "quantity": "1"}]},
    ("POST", "/purchase-orders/{ref}/close"): {},
    ("POST", "/tasks/{task_id}/decision"): {"decision": "approve"},
    ("POST", "/tasks/{task_id}/reassign"): {"to": "carol"},
    ("POST", "/exceptions/{exception_id}/assign"): {"assignee": "clerk"},
    ("POST", "/exceptions/{exception_id}/resolve"): {"action": "accept", "reason_code": "ok"},
}


def test_hostile_path_and_query_values_get_a_4xx_problem(service) -> None:
    """NUL, very long, SQL-looking and odd values in every parameter: never a 5xx."""
    name, svc = service
    document = svc.client.get("/openapi.json").json()
    findings, sent = [], 0
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
            for target in params:
                for label, value in HOSTILE.items():
                    path = template
                    for p in (p for p in params if p["in"] == "path"):
                        path = path.replace("{" + p["name"] + "}",
                                            quote(value if p is target else "x", safe=""))
                    query = {target["name"]: value} if target["in"] == "query" else {}
                    r = svc.client.request(method.upper(), path, params=query, headers=ALL_ROLES,
                                           json=BODIES.get((method.upper(), template)))
                    sent += 1
                    problem = r.headers.get("content-type", "").startswith("application/problem+json")
                    if r.status_code >= 500 or (r.status_code >= 400 and not problem):
                        findings.append(f"{method.upper()} {template} with {label} in "
                                        f"{target['in']} parameter {target['name']}: "
                                        f"{r.status_code} {r.text[:160]}")
    print(f"\nhostile values {name}: {sent} requests")
    assert not findings, f"{name}: {len(findings)} request(s) not answered with a 4xx problem:\n" \
        + "\n".join(findings)


# -- hostile strings inside otherwise valid JSON bodies -----------------------------------------
BODY_VALUES = {"NUL": "a\x00b", "lone surrogate": "a\ud800b"}
Factory = Callable[[int], Any]  # n → a valid body whose unique keys (ids, numbers) derive from n


def _write_bodies(name: str) -> list[tuple[str, str, Factory]]:
    """(method, path, body factory) for the writes that store what they are sent."""
    policy = yaml.safe_load((REPO_ROOT / "deploy" / "approval-policy.yaml").read_text())
    tolerances = yaml.safe_load((REPO_ROOT / "deploy" / "tolerances.yaml").read_text())
    return {
        "requisitions": [
            ("POST", "/suppliers", lambda n: {
                "id": f"SUP-H{n}", "name": "Hostile Ltd", "vat_id": f"DE{n:09d}",
                "peppol_id": f"0088:{n:07d}", "identifiers": [f"0192:{n}"], "currency": "EUR"}),
            ("POST", "/requisitions", lambda n: {
                "title": "Hostile", "cost_center": "CC-100", "currency": "EUR",
                "needed_by": "2030-01-01", "justification": "why", "lines": [
                    {"description": "cable", "category": "IT", "quantity": "1", "uom": "EA",
                     "unit_price": "10", "supplier_id": "SUP-H0"}]}),
        ],
        "approvals": [
            ("PUT", "/delegations/me", lambda n: {
                "delegate_to": "carol", "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2027-01-01T00:00:00Z"}),
            ("POST", "/approvals/preview", lambda n: {
                "cost_center": "CC-100", "currency": "EUR", "lines": [
                    {"description": "desk", "category": "IT", "quantity": "1",
                     "unit_price": "900"}]}),
            ("PUT", "/policy", lambda n: policy),
        ],
        "invoices": [("POST", "/invoices", lambda n: native(f"HOSTILE-{n}"))],
        "matching": [("PUT", "/tolerances", lambda n: tolerances),
                     ("POST", "/tolerances/simulate", lambda n: {"policy": tolerances})],
    }[name]


def _targets(value: Any, at: tuple = ()) -> list[tuple[tuple, bool]]:
    """(path, is_key) of every string leaf and every key in `value`."""
    if isinstance(value, str):
        return [(at, False)]
    if isinstance(value, list):
        return [t for i, item in enumerate(value) for t in _targets(item, (*at, i))]
    if isinstance(value, dict):
        return [t for k, item in value.items()
                for t in [*_targets(item, (*at, k)), ((*at, k), True)]]
    return []


def _poisoned(value: Any, path: tuple, is_key: bool, hostile: str) -> Any:
    value = copy.deepcopy(value)
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    if is_key:
        parent[hostile] = parent.pop(path[-1])
    else:
        parent[path[-1]] = hostile
    return value


def test_hostile_strings_in_json_bodies_get_no_5xx(service) -> None:
    """NUL and lone surrogates (valid JSON escapes, not Unicode) in each string and key of a
    valid body: a 2xx or a 4xx problem, never a 5xx."""
    name, svc = service
    findings, sent = [], 0
    headers = {**ALL_ROLES, "Content-Type": "application/json"}
    for method, path, factory in _write_bodies(name):
        assert svc.client.request(method, path, headers=headers,  # the body itself is valid
                                  json=factory(0)).status_code < 300
        for label, hostile in BODY_VALUES.items():
            for where, is_key in _targets(factory(0)):
                sent += 1
                variant = _poisoned(factory(sent), where, is_key, hostile)
                r = svc.client.request(method, path, headers=headers,
                                       content=json.dumps(variant).encode())
                problem = r.headers.get("content-type", "").startswith("application/problem+json")
                if r.status_code >= 500 or (r.status_code >= 400 and not problem):
                    at = ".".join(map(str, where)) + (" (a key)" if is_key else "")
                    findings.append(f"{method} {path} with {label} at {at}: "
                                    f"{r.status_code} {r.text[:160]}")
    print(f"\nhostile bodies {name}: {sent} requests")
    assert not findings, f"{name}: {len(findings)} body variant(s) not answered properly:\n" \
        + "\n".join(findings)
