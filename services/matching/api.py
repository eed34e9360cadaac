"""HTTP routes of the matching service: parse, authorise, call a handler, shape the response."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import isodate
import yaml
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from services.matching import store
from services.matching.domain import RULES, CaseConflict, SegregationOfDuties
from services.matching.handlers import Matching
from services.matching.policy import PolicyError, parse_policy
from shared.auth import User, require_roles
from shared.db import one_snapshot
from shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
    UnsupportedMediaType,
    field_error,
)
from shared.service import RuntimeDep, SessionDep

READERS = ("ap_clerk", "auditor", "admin")
# Ids and filters: printable and bounded (PostgreSQL text cannot hold NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
IdPath = Annotated[str, Path(min_length=1, max_length=200, pattern=PRINTABLE)]
IdQuery = Annotated[str | None, Query(min_length=1, max_length=200, pattern=PRINTABLE)]
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

Reader = Annotated[User, require_roles(*READERS)]
Clerk = Annotated[User, require_roles("ap_clerk")]
Admin = Annotated[User, require_roles("admin")]
Simulator = Annotated[User, require_roles("admin", "ap_clerk")]


def _matching(runtime) -> Matching:
    return runtime.extras["matching"]


def _policy_errors(exc: PolicyError, prefix: str = "") -> Unprocessable:
    return Unprocessable(
        "the tolerance policy is invalid",
        errors=[field_error(f"{prefix}{path}" if path else prefix.rstrip(".") or "policy", rule, msg)
                for path, rule, msg in exc.errors])


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def exception_json(exc: store.ExceptionRow) -> dict[str, Any]:
    return {
        "id": exc.id, "invoice_id": exc.invoice_id, "invoice_number": exc.invoice_number,
        "po_number": exc.po_number, "supplier_id": exc.supplier_id, "reasons": exc.reasons,
        "status": exc.status, "assignee": exc.assignee, "currency": exc.currency,
        "match_id": exc.match_id, "created_at": _ts(exc.created_at),
        "resolved_at": _ts(exc.resolved_at), "resolution": exc.resolution,
    }


router = APIRouter()


# -- matches -------------------------------------------------------------------------------

@router.get("/matches/{invoice_id}", tags=["matches"],
            summary="The latest match decision of an invoice with every check, passed or not")
def get_match(invoice_id: IdPath, session: SessionDep, _: Reader) -> dict[str, Any]:
    # Under READ COMMITTED a match committed between the two reads paired the previous outcome
    # with the new status (seen: status cleared, outcome awaiting_receipt).
    one_snapshot(session)
    decision = store.latest_decision(session, invoice_id)
    invoice = store.get_invoice(session, invoice_id)
    if decision is None or invoice is None:
        raise NotFound(f"no match decision for invoice {invoice_id}")
    return {
        "invoice_id": invoice_id, "po_number": decision.po_number, "outcome": decision.outcome,
        "status": invoice.state, "policy_version": decision.policy_version,
        "decided_at": _ts(decision.decided_at), "match_id": decision.id,
        "trigger": decision.trigger, "wait_until": _ts(invoice.deadline),
        "checks": decision.checks,
    }


# -- tolerances ----------------------------------------------------------------------------

@router.get("/tolerances", tags=["tolerances"], summary="The current tolerance policy")
def get_tolerances(session: SessionDep, _: Reader) -> dict[str, Any]:
    row = store.current_policy(session)
    if row is None:
        raise NotFound("no tolerance policy is stored")
    return {"version": row.version, "policy": row.document, "created_by": row.created_by,
            "created_at": _ts(row.created_at)}


async def _policy_document(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    if content_type in YAML_TYPES:
        try:
            return yaml.safe_load(body or b"")
        except yaml.YAMLError as exc:
            raise BadRequest(f"the body is not valid YAML: {exc}") from exc
    raise UnsupportedMediaType("send the policy as application/yaml or application/json")


@router.put("/tolerances", tags=["tolerances"],
            summary="Replace the tolerance policy (YAML or JSON); creates a new version",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}}}}})
async def put_tolerances(request: Request, runtime: RuntimeDep, session: SessionDep,
                         user: Admin) -> dict[str, Any]:
    document = await _policy_document(request)

    def save() -> tuple[int, dict[str, Any]]:
        with session.begin():
            return _matching(runtime).put_policy(session, document, user.id)

    try:
        version, policy = await run_in_threadpool(save)
    except PolicyError as exc:
        raise _policy_errors(exc) from exc
    return {"version": version, "policy": policy}


class SimulateRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    policy: dict[str, Any] = Field(description="candidate tolerance policy (same shape as PUT)")
    from_: datetime | None = Field(default=None, alias="from",
                                   description="only invoices received at or after this time")
    to: datetime | None = Field(default=None, description="only invoices received before this time")


@router.post("/tolerances/simulate", tags=["tolerances"],
             summary="What-if: replay the latest match inputs under a candidate policy (changes nothing)")
def simulate(body: SimulateRequest, runtime: RuntimeDep, session: SessionDep,
             _: Simulator) -> dict[str, Any]:
    try:
        candidate = parse_policy(body.policy)
    except PolicyError as exc:
        raise _policy_errors(exc, "policy.") from exc
    # A time without an offset (or a bare date) is read as UTC.
    since, until = ((v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v)
                    for v in (body.from_, body.to))
    if since and until and since >= until:
        raise Unprocessable("empty window", errors=[field_error("to", "after_from", "must be after from")])
    # Read-only: the session is never committed (closing it rolls back).
    return _matching(runtime).simulate(session, candidate, since, until)


# -- exceptions ----------------------------------------------------------------------------

def _older_than(value: str) -> datetime:
    now = datetime.now(UTC)
    if value.startswith("P"):
        try:
            duration = isodate.parse_duration(value)
        except (isodate.ISO8601Error, ValueError):
            duration = None
        if isinstance(duration, timedelta) and duration >= timedelta(0):
            return now - duration
    else:
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            ts = None
        if ts is not None and ts.tzinfo is not None:
            return ts
    raise Unprocessable("bad filter", errors=[field_error(
        "older_than", "duration_or_timestamp",
        "an ISO 8601 duration (e.g. P2D, PT4H) or an RFC 3339 timestamp with offset")])


@router.get("/exceptions", tags=["exceptions"], summary="The exceptions queue, oldest first")
def list_exceptions(
    session: SessionDep,
    _: Reader,
    status: Literal["open", "waiting_supplier", "resolved"] | None = None,
    reason: str | None = None,
    supplier_id: IdQuery = None,
    assignee: IdQuery = None,
    older_than: str | None = Query(default=None, max_length=100,
                                   description="ISO 8601 duration or RFC 3339 time"),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=1000),
) -> dict[str, Any]:
    if reason is not None and reason not in RULES:
        raise Unprocessable("unknown reason", errors=[field_error(
            "reason", "enum", f"one of {', '.join(RULES)}")])
    after = None
    if cursor:
        try:
            after = store.decode_cursor(cursor)
            if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in after[1]):
                raise ValueError("not an exception id")
        except (ValueError, TypeError) as exc:
            raise Unprocessable("bad cursor", errors=[field_error(
                "cursor", "cursor", "not a cursor returned by this endpoint")]) from exc
    created_before = _older_than(older_than) if older_than else None
    rows = store.list_exceptions(session, status=status, reason=reason, supplier_id=supplier_id,
                                 assignee=assignee, created_before=created_before, after=after,
                                 limit=limit + 1)
    page = rows[:limit]
    next_cursor = (store.encode_cursor(page[-1].created_at, page[-1].id)
                   if len(rows) > limit else None)
    return {"items": [exception_json(r) for r in page], "next_cursor": next_cursor}


@router.get("/exceptions/{exception_id}", tags=["exceptions"],
            summary="One exception with its failed checks and audit trail")
def get_exception(exception_id: IdPath, session: SessionDep, _: Reader) -> dict[str, Any]:
    exc = store.get_exception(session, exception_id)
    if exc is None:
        raise NotFound(f"no exception {exception_id}")
    decision = store.latest_decision(session, exc.invoice_id)
    out = exception_json(exc)
    out["checks"] = [c for c in (decision.checks if decision else []) if not c["passed"]]
    out["history"] = [{"at": _ts(a.at), "by": a.by, "action": a.action, "detail": a.detail}
                      for a in store.audit_trail(session, exc.id)]
    return out


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)


@router.post("/exceptions/{exception_id}/assign", tags=["exceptions"],
             summary="Assign an open exception to a clerk")
def assign(exception_id: IdPath, body: AssignRequest, runtime: RuntimeDep, session: SessionDep,
           user: Clerk) -> dict[str, Any]:
    try:
        with session.begin():
            exc = _matching(runtime).assign(session, exception_id, body.assignee.strip(), user.id)
            if exc is None:
                raise NotFound(f"no exception {exception_id}")
            out = exception_json(exc)
    except CaseConflict as err:
        raise Conflict(str(err)) from err
    return out


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["accept", "reject", "request_credit_note", "rematch"]
    reason_code: str = Field(min_length=1, max_length=100, pattern=PRINTABLE)
    comment: str | None = Field(default=None, max_length=4000, pattern=r"^[^\x00]*$")


@router.post("/exceptions/{exception_id}/resolve", tags=["exceptions"],
             summary="Resolve: accept, reject, request a credit note or re-run the match")
def resolve(exception_id: IdPath, body: ResolveRequest, runtime: RuntimeDep, session: SessionDep,
            user: Clerk) -> dict[str, Any]:
    if not body.reason_code.strip():
        raise Unprocessable("reason code required", errors=[field_error(
            "reason_code", "required", "give a reason code")])
    try:
        with session.begin():
            result = _matching(runtime).resolve(session, exception_id, body.action,
                                                body.reason_code.strip(), body.comment, user.id)
            if result is None:
                raise NotFound(f"no exception {exception_id}")
            exc, outcome = result
            out = exception_json(exc)
    except SegregationOfDuties as err:
        raise Forbidden(str(err)) from err
    except CaseConflict as err:
        raise Conflict(str(err)) from err
    if outcome is not None:
        out["match_outcome"] = outcome
    return out
