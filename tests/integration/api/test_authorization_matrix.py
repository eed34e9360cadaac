"""Authorisation matrix: every route of every service × every role, no token and a forged token.

The routes come from each service's own OpenAPI document, so a new endpoint without an entry
in ACCESS fails the test. ACCESS says who may call each route, from architecture §4 and the
choices each service documents (services/*/README.md, the docstrings of services/*/api.py):

- no token, or a token not signed with our secret → 401 (except /healthz, /readyz, /metrics);
- a role not allowed → 403 (problem+json);
- an allowed role → neither 401 nor 403 (404/409/422 are fine: placeholder ids, minimal bodies).

Each caller holds exactly one role, plus a caller holding no role at all. Where a service
decides access on the object (owner, assignee, involved person) it looks the object up first
(404 before 403, documented in services/requisitions/README.md), so those routes are called
with a real object that belongs to the requester `alice` and, for approvals, is assigned to
the approver `bob`; every other caller is somebody else. Object-level rules as such (another
requester's document) are tested by each service's own suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from shared.auth import ROLES, mint_token
from tests.integration.api.conftest import real_objects
from tests.support.auth import bearer
from tests.support.stack import RunningService

pytestmark = pytest.mark.integration

PUBLIC = "public"  # no token needed
AUTHENTICATED = "authenticated"  # any valid token, whatever its roles


@dataclass(frozen=True)
class Access:
    who: str | frozenset[str]  # PUBLIC, AUTHENTICATED or the roles allowed
    json: Any = None  # the body sent (minimal: enough to get past parsing where it matters)
    content: tuple[str, bytes] | None = None  # (content type, raw body) instead of json
    why: str = ""


def roles(*names: str, **kw: Any) -> Access:
    unknown = set(names) - set(ROLES)
    assert not unknown, unknown
    return Access(frozenset(names), **kw)


OPS = {
    ("GET", "/healthz"): Access(PUBLIC, why="§4: no token"),
    ("GET", "/readyz"): Access(PUBLIC, why="§4: no token"),
}
# Not in the OpenAPI documents but served by every service; /metrics is public (§4).
UNDOCUMENTED = {("GET", "/metrics"): Access(PUBLIC, why="§4: no token")}
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/metrics"}

ACCESS: dict[str, dict[tuple[str, str], Access]] = {
    "requisitions": {
        **OPS,
        ("POST", "/suppliers"): roles("admin", json={}, why="§4.1"),
        ("GET", "/suppliers"): Access(AUTHENTICATED, why="README: any authenticated user"),
        ("GET", "/suppliers/{supplier_id}"): Access(AUTHENTICATED, why="README"),
        ("POST", "/requisitions"): roles("requester", json={}, why="§4.1"),
        ("GET", "/requisitions"): Access(AUTHENTICATED, why="README: everyone, filtered"),
        ("GET", "/requisitions/{req_id}"): roles(
            "requester", "approver", "admin", "auditor",
            why="README: owner, approver, admin, auditor"),
        ("PATCH", "/requisitions/{req_id}"): roles(
            "requester", json={"title": "matrix"}, why="§4.1: owner"),
        ("POST", "/requisitions/{req_id}/submit"): roles("requester", why="§4.1: owner"),
        ("POST", "/requisitions/{req_id}/cancel"): roles("requester", json={}, why="§4.1: owner"),
        ("GET", "/purchase-orders"): Access(AUTHENTICATED, why="README: everyone, filtered"),
        ("GET", "/purchase-orders/{ref}"): roles(
            "requester", "receiver", "ap_clerk", "approver", "admin", "auditor",
            why="README: everyone but integrations"),
        ("POST", "/purchase-orders/{ref}/receipts"): roles(
            "receiver", "requester", json={"lines": [{"line_no": 1, "quantity": "1"}]},
            why="§4.1: receiver, or the requester"),
        ("POST", "/purchase-orders/{ref}/close"): roles(
            "admin", "requester", json={}, why="README: admin or the requester"),
    },
    "approvals": {
        **OPS,
        ("GET", "/policy"): Access(AUTHENTICATED, why="§4.2: no role named"),
        ("PUT", "/policy"): roles("admin", json={}, why="§4.2"),
        ("POST", "/approvals/preview"): roles("requester", json={}, why="§4.2"),
        ("GET", "/approvals/{requisition_id}"): roles(
            "requester", "approver", "admin", "auditor",
            why="service: the requester, the approvers, admins and auditors"),
        ("GET", "/inbox"): roles("approver", why="§4.2"),
        ("POST", "/tasks/{task_id}/decision"): roles(
            "approver", json={"decision": "reject"},  # no comment: 422 for the assignee
            why="§4.2: the assignee or a current delegate"),
        ("POST", "/tasks/{task_id}/reassign"): roles(
            "approver", "admin", json={"to": "nobody-known"},  # unknown user: 422
            why="§4.2: the assignee or an admin"),
        ("PUT", "/delegations/me"): Access(AUTHENTICATED, json={}, why="§4.2: one's own"),
        ("GET", "/delegations/me"): Access(AUTHENTICATED, why="one's own"),
        ("DELETE", "/delegations/me"): Access(AUTHENTICATED, why="§4.2: one's own"),
    },
    "invoices": {
        **OPS,
        ("POST", "/invoices"): roles("integration", "ap_clerk", json={}, why="§4.3"),
        ("POST", "/invoices/batch"): roles(
            "integration", "ap_clerk", content=("text/csv", b""), why="§4.3"),
        ("GET", "/invoices"): roles("ap_clerk", "integration", "auditor", "admin",
                                    why="README"),
        ("GET", "/invoices/{invoice_id}"): roles("ap_clerk", "integration", "auditor", "admin",
                                                 why="README"),
        ("GET", "/invoices/{invoice_id}/original"): roles(
            "ap_clerk", "integration", "auditor", "admin", why="README"),
    },
    "matching": {
        **OPS,
        ("GET", "/matches/{invoice_id}"): roles("ap_clerk", "auditor", "admin",
                                                why="README: AP reads"),
        ("GET", "/tolerances"): roles("ap_clerk", "auditor", "admin", why="README"),
        ("PUT", "/tolerances"): roles("admin", json={"default": "not a mapping"}, why="§4.4"),
        ("POST", "/tolerances/simulate"): roles("admin", "ap_clerk", json={}, why="§4.4"),
        ("GET", "/exceptions"): roles("ap_clerk", "auditor", "admin",
                                      why="§4.4: ap_clerk; auditors read; README: admins read"),
        ("GET", "/exceptions/{exception_id}"): roles("ap_clerk", "auditor", "admin",
                                                     why="§4.4 + README"),
        ("POST", "/exceptions/{exception_id}/assign"): roles("ap_clerk", json={}, why="§4.4"),
        ("POST", "/exceptions/{exception_id}/resolve"): roles("ap_clerk", json={}, why="§4.4"),
    },
}

# One caller per role; the requester and the approver are people of the demo policy
# (alice raises requisitions in CC-100, whose owner bob approves them).
USER_OF = {role: f"matrix-{role}" for role in ROLES} | {"requester": "alice", "approver": "bob"}
PLACEHOLDER = "matrix-does-not-exist"


@dataclass
class Objects:
    """Real ids for routes whose access is decided on the object; the rest get PLACEHOLDER."""

    ids: dict[str, str] = field(default_factory=dict)

    def path(self, template: str) -> str:
        out = template
        while "{" in out:
            start, end = out.index("{"), out.index("}")
            out = out[:start] + self.ids.get(out[start + 1:end], PLACEHOLDER) + out[end + 1:]
        return out




@dataclass(frozen=True)
class Caller:
    label: str
    headers: dict[str, str]
    role: str | None = None  # the one role held, None for no role or no valid token
    authenticated: bool = True


def _callers() -> list[Caller]:
    forged = mint_token("mallory", list(ROLES), secret="not-the-p2p-secret-" + "x" * 16)
    expired = mint_token("alice", list(ROLES), ttl=timedelta(seconds=-60))
    return [
        *(Caller(role, bearer(USER_OF[role], role), role) for role in ROLES),
        Caller("no role", bearer("matrix-nobody")),
        Caller("no token", {}, authenticated=False),
        Caller("forged token", {"Authorization": f"Bearer {forged}"}, authenticated=False),
        Caller("expired token", {"Authorization": f"Bearer {expired}"}, authenticated=False),
    ]


def _allowed(access: Access, caller: Caller) -> bool:
    if access.who == PUBLIC:
        return True
    if not caller.authenticated:
        return False
    if access.who == AUTHENTICATED:
        return True
    return caller.role in access.who


def _expected(access: Access, caller: Caller) -> str:
    if _allowed(access, caller):
        return "allowed"
    return "401" if not caller.authenticated else "403"


def _call(svc: RunningService, method: str, path: str, access: Access, caller: Caller):
    kwargs: dict[str, Any] = {"headers": dict(caller.headers)}
    if access.content is not None:
        kwargs["headers"]["Content-Type"] = access.content[0]
        kwargs["content"] = access.content[1]
    elif access.json is not None:
        kwargs["json"] = access.json
    return svc.client.request(method, path, **kwargs)


def _verdict(expected: str, response) -> str | None:
    status = response.status_code
    problem = response.headers.get("content-type", "").startswith("application/problem+json")
    if expected == "allowed":
        if status in (401, 403) or status >= 500:
            return f"expected access, got {status}: {response.text[:200]}"
        return None
    if status != int(expected) or not problem:
        return f"expected {expected} problem+json, got {status}: {response.text[:200]}"
    return None


def _documented_routes(svc: RunningService) -> set[tuple[str, str]]:
    document = svc.client.get("/openapi.json").json()
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def _served_routes(svc: RunningService) -> set[str]:
    return {route.path for route in svc.client.app.routes if getattr(route, "path", None)}


def test_every_route_admits_exactly_the_roles_of_the_contract(service) -> None:
    name, svc = service
    table = ACCESS[name]
    documented = _documented_routes(svc)
    missing = sorted(documented - set(table))
    assert not missing, (f"{name}: routes without an entry in the access table (add one "
                         f"with the roles the contract allows): {missing}")
    stale = sorted(set(table) - documented)
    assert not stale, f"{name}: access-table entries for routes it does not serve: {stale}"
    hidden = _served_routes(svc) - {path for _, path in documented} - FRAMEWORK_ROUTES
    assert not hidden, f"{name}: routes left out of the OpenAPI document: {sorted(hidden)}"

    objects = Objects(real_objects(name, svc))
    callers = _callers()
    findings: list[str] = []
    cells = 0
    for (method, template), access in {**table, **UNDOCUMENTED}.items():
        path = objects.path(template)
        # Refusals first: an allowed call may change the object (e.g. close a PO).
        ordered = sorted(callers, key=lambda c: _expected(access, c) == "allowed")
        for caller in ordered:
            expected = _expected(access, caller)
            problem = _verdict(expected, _call(svc, method, path, access, caller))
            cells += 1
            if problem:
                findings.append(f"{method} {template} as {caller.label}: {problem}")
    print(f"\nauthorisation matrix {name}: {len(table) + len(UNDOCUMENTED)} routes × "
          f"{len(callers)} callers = {cells} requests")
    assert not findings, f"{name}: {len(findings)} cell(s) differ from the contract:\n" + \
        "\n".join(findings)
