"""HTTP routes of the approvals service: parse, authorise, call a handler, shape the response."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from services.approvals import store
from services.approvals.domain import RoutingRequest
from services.approvals.handlers import ApprovalService, money, now
from services.approvals.policy import text_problem
from shared.auth import CurrentUser, User, require_roles
from shared.errors import BadRequest, NotFound, Unprocessable, UnsupportedMediaType, field_error
from shared.service import RuntimeDep, SessionDep

router = APIRouter()

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class _PolicyLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: a policy needs none, and alias bombs need them."""

    def fetch_alias(self) -> None:
        raise yaml.YAMLError("YAML aliases (*name) are not allowed in a policy document")


def get_service(runtime: RuntimeDep) -> ApprovalService:
    return runtime.extras["approvals"]


ServiceDep = Annotated[ApprovalService, Depends(get_service)]


def _valid_text(value: str) -> str:
    if text_problem(value):
        raise ValueError("must be valid Unicode without NUL or control characters")
    return value


def _valid_name(value: str) -> str:
    if text_problem(value, allow_newlines=False):
        raise ValueError("must be valid Unicode without NUL or control characters")
    return value


# Ids in paths: printable, bounded (PostgreSQL text cannot hold NUL; nothing needs 200+ chars).
IdPath = Annotated[str, Path(min_length=1, max_length=200), AfterValidator(_valid_name)]
# Free text and names that end up in the database or in answers.
Text = Annotated[str, Field(max_length=4000), AfterValidator(_valid_text)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_valid_name)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- policy --------------------------------------------------------------------------------

@router.get("/policy", tags=["policy"], summary="The current approval policy and org directory")
def get_policy(session: SessionDep, service: ServiceDep, _: CurrentUser) -> dict[str, Any]:
    version, policy = service.policy(session)
    return {"version": version, "policy": policy.document()}


@router.put(
    "/policy", tags=["policy"], status_code=201,
    summary="Store a new policy version (admin); YAML or JSON; running approvals keep theirs",
    dependencies=[require_roles("admin")],
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}}}}},
)
async def put_policy(request: Request, session: SessionDep, service: ServiceDep,
                     user: CurrentUser) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type == "application/json":
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    elif content_type in YAML_TYPES:
        try:
            document = yaml.load(raw, Loader=_PolicyLoader)
        except yaml.YAMLError as exc:
            raise BadRequest(f"the body is not valid YAML: {exc}") from exc
    else:
        raise UnsupportedMediaType("send the policy as application/yaml or application/json")
    version, policy = await run_in_threadpool(service.put_policy, session, document, user)
    return {"version": version, "policy": policy.document()}


# -- preview -------------------------------------------------------------------------------

class PreviewLine(_Body):
    description: Text | None = None
    category: Name | None = None
    quantity: Decimal = Field(gt=0)
    unit_price: Decimal = Field(ge=0)
    uom: str | None = None
    supplier_id: str | None = None
    receipt_required: bool | None = None


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the full requisition body is welcome

    title: Text | None = None
    cost_center: Name
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    lines: list[PreviewLine] = Field(min_length=1)


@router.post("/approvals/preview", tags=["approvals"],
             summary="The chain a requisition would get, starting nothing (the caller is the requester)")
def preview(body: PreviewRequest, session: SessionDep, service: ServiceDep,
            user: Annotated[User, require_roles("requester")]) -> dict[str, Any]:
    total = sum((line.quantity * line.unit_price for line in body.lines), Decimal(0))
    request = RoutingRequest(requester=user.id, cost_center=body.cost_center,
                             currency=body.currency, total=total,
                             categories=frozenset(l.category for l in body.lines if l.category))
    version, chain, policy = service.preview(session, request)
    return {
        "auto_approved": chain.auto_approved,
        "policy_version": version,
        "total": money(total),
        "currency": body.currency,
        "amount_base": money(chain.amount_base),
        "base_currency": policy.base_currency,
        "steps": [{"level": s.level, "mode": s.mode, "approvers": list(s.approvers),
                   "reason": s.reason} for s in chain.steps],
    }


@router.get("/approvals/{requisition_id}", tags=["approvals"],
            summary="Steps, decisions and history of a requisition's latest approval")
def get_approval(requisition_id: IdPath, session: SessionDep, service: ServiceDep,
                 user: CurrentUser,
                 submission: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    """The latest submission's approval, or `?submission=n` for an earlier one."""
    return service.approval_view(session, requisition_id, user, submission)


# -- inbox and tasks -----------------------------------------------------------------------

class InboxItem(BaseModel):
    task_id: str
    requisition_id: str
    title: str
    requester: str
    amount: str
    currency: str
    level: int
    assignee: str
    on_behalf_of: str | None = None  # set when the caller sees it as the assignee's delegate
    assigned_at: datetime
    due_at: datetime | None = None


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None = None


@router.get("/inbox", tags=["tasks"], response_model=InboxPage,
            summary="Open tasks of the caller and of those whose delegate the caller is")
def get_inbox(session: SessionDep, user: Annotated[User, require_roles("approver")],
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              cursor: str | None = None) -> InboxPage:
    after = None
    if cursor:
        try:
            after = store.decode_cursor(cursor)
        except (ValueError, TypeError) as exc:
            raise Unprocessable("the cursor is not valid",
                                errors=[field_error("cursor", "invalid", "not a cursor from this API")]) from exc
    rows = store.inbox(session, user.id, now(), limit + 1, after)
    items = [InboxItem(task_id=t.task_id, requisition_id=t.requisition_id, title=t.title,
                       requester=t.requester, amount=money(t.amount), currency=t.currency,
                       level=t.level, assignee=t.assignee, on_behalf_of=behalf,
                       assigned_at=t.assigned_at, due_at=t.due_at) for t, behalf in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = store.encode_cursor(last.assigned_at, last.task_id)
    return InboxPage(items=items, next_cursor=next_cursor)


class DecisionBody(_Body):
    decision: Literal["approve", "reject", "request_changes"]
    comment: Text | None = None


@router.post("/tasks/{task_id}/decision", tags=["tasks"],
             summary="Approve, reject or request changes (a workflow update with a validator)",
             responses={409: {"description": "The task is closed"},
                        422: {"description": "A comment is required for reject and request_changes"}})
def decide(task_id: IdPath, body: DecisionBody, session: SessionDep, service: ServiceDep,
           user: Annotated[User, require_roles("approver")]) -> dict[str, Any]:
    return service.decide(session, task_id, user, body.decision, body.comment)


class ReassignBody(_Body):
    to: Name
    comment: Text | None = None


@router.post("/tasks/{task_id}/reassign", tags=["tasks"],
             summary="Hand an open task to someone else (its assignee or an admin)")
def reassign(task_id: IdPath, body: ReassignBody, session: SessionDep, service: ServiceDep,
             user: Annotated[User, require_roles("approver", "admin")]) -> dict[str, Any]:
    return service.reassign(session, task_id, user, body.to, body.comment)


# -- delegations ---------------------------------------------------------------------------

class DelegationBody(_Body):
    delegate_to: Name
    starts_at: AwareDatetime
    ends_at: AwareDatetime


def _delegation(row: store.DelegationRow) -> dict[str, Any]:
    return {"user_id": row.user_id, "delegate_to": row.delegate_to, "starts_at": row.starts_at,
            "ends_at": row.ends_at}


@router.put("/delegations/me", tags=["delegations"],
            summary="Out of office: open and new tasks route to the delegate in the window")
def put_delegation(body: DelegationBody, session: SessionDep, service: ServiceDep,
                   user: CurrentUser) -> dict[str, Any]:
    service.set_delegation(session, user, body.delegate_to, body.starts_at, body.ends_at)
    row = store.get_delegation(session, user.id)
    assert row is not None
    return _delegation(row)


@router.get("/delegations/me", tags=["delegations"], summary="The caller's delegation, if any")
def get_delegation(session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    row = store.get_delegation(session, user.id)
    if row is None:
        raise NotFound("you have no delegation")
    return _delegation(row)


@router.delete("/delegations/me", tags=["delegations"], status_code=204,
               summary="End the caller's delegation")
def delete_delegation(session: SessionDep, service: ServiceDep, user: CurrentUser) -> Response:
    service.clear_delegation(session, user)
    return Response(status_code=204)
