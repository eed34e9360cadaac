"""Approval rules as pure code: the policy document, routing, and what a decision may do.

Nothing here touches the database, HTTP, Kafka or Temporal: the workflow, the API and the
consumer all call these functions with plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal

import isodate
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DECISIONS = ("approve", "reject", "request_changes")
OUTCOME_OF = {"approve": "approved", "reject": "rejected", "request_changes": "changes_requested"}
POLICY_ACTOR = "policy"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


# -- the policy document -------------------------------------------------------------------

class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Field validators raise ValueError: pydantic reports those (not TypeError) as field errors.

def _positive_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError("must be a decimal string, not a float")  # noqa: TRY004
    try:
        d = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError("must be a decimal number") from exc
    if not d.is_finite() or d < 0:
        raise ValueError("must be a non-negative decimal")
    return d


def _duration(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration string such as PT24H")  # noqa: TRY004
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError("must be an ISO 8601 duration such as PT24H or P2D") from exc
    if not isinstance(parsed, timedelta) or parsed <= timedelta(0):
        raise ValueError("must be a positive duration in days, hours, minutes or seconds")
    return value


class Sla(_Doc):
    reminder_after: str = "PT24H"
    escalate_after: str = "PT48H"

    _check = field_validator("reminder_after", "escalate_after", mode="before")(_duration)

    @property
    def reminder(self) -> timedelta:
        return isodate.parse_duration(self.reminder_after)

    @property
    def escalation(self) -> timedelta:
        return isodate.parse_duration(self.escalate_after)


class User(_Doc):
    id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1)
    manager: str | None = None
    approval_limit: Decimal | None = None  # None = unlimited
    email: str | None = None

    _limit = field_validator("approval_limit", mode="before")(
        lambda v: None if v is None else _positive_decimal(v))


class CostCenter(_Doc):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    owner: str


class RuleCondition(_Doc):
    category: str | list[str] | None = None
    min_amount: Decimal | None = None  # base currency, inclusive
    max_amount: Decimal | None = None  # base currency, exclusive
    cost_center: str | list[str] | None = None

    _amounts = field_validator("min_amount", "max_amount", mode="before")(
        lambda v: None if v is None else _positive_decimal(v))

    def matches(self, categories: frozenset[str], amount_base: Decimal, cost_center: str) -> bool:
        if self.category is not None:
            wanted = {self.category} if isinstance(self.category, str) else set(self.category)
            if not wanted & categories:
                return False
        if self.cost_center is not None:
            wanted = {self.cost_center} if isinstance(self.cost_center, str) else set(self.cost_center)
            if cost_center not in wanted:
                return False
        if self.min_amount is not None and amount_base < self.min_amount:
            return False
        return self.max_amount is None or amount_base < self.max_amount


class Rule(_Doc):
    name: str = Field(min_length=1)
    when: RuleCondition = Field(default_factory=RuleCondition)
    approvers: list[str] = Field(min_length=1)
    mode: Literal["all", "any"] = "all"


class Policy(_Doc):
    base_currency: str
    fx_rates: dict[str, Decimal] = Field(default_factory=dict)  # 1 unit = x base
    auto_approve_below: Decimal = Decimal(0)
    sla: Sla = Field(default_factory=Sla)
    users: list[User] = Field(min_length=1)
    cost_centers: list[CostCenter] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    _base = field_validator("base_currency")(lambda v: _currency_code(v))
    _threshold = field_validator("auto_approve_below", mode="before")(_positive_decimal)

    @field_validator("fx_rates", mode="before")
    @classmethod
    def _rates(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for code, rate in value.items():
            _currency_code(code)
            d = _positive_decimal(rate)
            if d == 0:
                raise ValueError(f"the rate of {code} must be positive")
            out[code] = d
        return out

    # Lookups (built on demand; the model is frozen, so cache by identity is not needed).
    def user(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def managers(self) -> dict[str, str]:
        return {u.id: u.manager for u in self.users if u.manager}

    def cost_center(self, cc_id: str) -> CostCenter | None:
        return next((c for c in self.cost_centers if c.id == cc_id), None)

    def to_base(self, amount: Decimal, currency: str) -> Decimal:
        if currency == self.base_currency:
            return amount
        rate = self.fx_rates.get(currency)
        if rate is None:
            raise RoutingError("currency", "fx_rate_missing",
                               f"the policy has no FX rate for {currency}")
        return amount * rate

    def document(self) -> dict[str, Any]:
        """The document as stored and served: decimals as strings, no defaults invented."""
        return self.model_dump(mode="json", exclude_none=True)


def _currency_code(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise ValueError("must be an ISO 4217 code (three upper-case letters)")
    return value


class PolicyInvalid(ValueError):
    """The policy document breaks the schema or the org rules; `errors` name the paths."""

    def __init__(self, errors: list[tuple[str, str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, _, m in errors))
        self.errors = errors


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "$"


def parse_policy(document: Any) -> Policy:
    """Validate a policy document (already parsed from YAML/JSON). Raises PolicyInvalid."""
    if not isinstance(document, dict):
        raise PolicyInvalid([("$", "type", "the policy must be a mapping")])
    try:
        policy = Policy.model_validate(document)
    except ValidationError as exc:
        raise PolicyInvalid([
            (_path(e["loc"]), e["type"], e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]) from exc
    errors = org_errors(policy)
    if errors:
        raise PolicyInvalid(errors)
    return policy


def org_errors(policy: Policy) -> list[tuple[str, str, str]]:
    """Referential checks: unique ids, known users, no manager cycles."""
    errors: list[tuple[str, str, str]] = []
    ids: dict[str, int] = {}
    for i, u in enumerate(policy.users):
        if u.id == POLICY_ACTOR:
            errors.append((f"users[{i}].id", "reserved", f"'{POLICY_ACTOR}' is reserved"))
        if u.id in ids:
            errors.append((f"users[{i}].id", "duplicate", f"user {u.id} is defined twice"))
        ids.setdefault(u.id, i)
    for i, u in enumerate(policy.users):
        if u.manager is not None and u.manager not in ids:
            errors.append((f"users[{i}].manager", "unknown_user", f"unknown user {u.manager}"))
        if u.manager == u.id:
            errors.append((f"users[{i}].manager", "manager_cycle", f"{u.id} manages themself"))
    managers = policy.managers()
    reported: set[str] = set()
    for i, u in enumerate(policy.users):
        seen = [u.id]
        current = managers.get(u.id)
        while current is not None and current in ids:
            if current in seen:
                cycle = seen[seen.index(current):] + [current]
                if not reported & set(cycle) and len(cycle) > 2:
                    errors.append((f"users[{i}].manager", "manager_cycle",
                                   "manager cycle: " + " -> ".join(cycle)))
                reported.update(cycle)
                break
            seen.append(current)
            current = managers.get(current)
    cc_ids: set[str] = set()
    for i, cc in enumerate(policy.cost_centers):
        if cc.id in cc_ids:
            errors.append((f"cost_centers[{i}].id", "duplicate", f"cost center {cc.id} is defined twice"))
        cc_ids.add(cc.id)
        if cc.owner not in ids:
            errors.append((f"cost_centers[{i}].owner", "unknown_user", f"unknown user {cc.owner}"))
    for i, rule in enumerate(policy.rules):
        for j, a in enumerate(rule.approvers):
            if a not in ids:
                errors.append((f"rules[{i}].approvers[{j}]", "unknown_user", f"unknown user {a}"))
    return errors


# -- routing -------------------------------------------------------------------------------

class RoutingError(ValueError):
    """The requisition cannot be routed under this policy (unknown cost center, no FX rate)."""

    def __init__(self, path: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.path, self.rule, self.message = path, rule, message


@dataclass(frozen=True)
class RoutingRequest:
    requester: str
    cost_center: str
    currency: str
    total: Decimal
    categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Step:
    level: int
    mode: str  # all | any
    approvers: tuple[str, ...]
    reason: str  # cost_center_owner | manager_chain | rule:<name>


@dataclass(frozen=True)
class Chain:
    auto_approved: bool
    amount_base: Decimal
    steps: tuple[Step, ...] = ()


def route(req: RoutingRequest, policy: Policy) -> Chain:
    """The approval chain of §4.2 for one requisition under one policy version."""
    amount = policy.to_base(req.total, req.currency)
    if amount < policy.auto_approve_below:
        return Chain(auto_approved=True, amount_base=amount)
    cc = policy.cost_center(req.cost_center)
    if cc is None:
        raise RoutingError("cost_center", "unknown_cost_center",
                           f"the policy has no cost center {req.cost_center}")
    managers = policy.managers()

    def stand_in(user_id: str | None) -> str | None:
        """Segregation of duties: where the requester would appear, their manager does."""
        hops = 0
        while user_id is not None and user_id == req.requester and hops <= len(managers):
            user_id = managers.get(user_id)
            hops += 1
        return user_id

    def limit(user_id: str) -> Decimal | None:
        user = policy.user(user_id)
        return user.approval_limit if user else None

    steps: list[Step] = []
    in_chain: set[str] = set()
    current = stand_in(cc.owner)
    reason = "cost_center_owner"
    hops = 0
    while current is not None and hops <= len(policy.users):
        hops += 1
        if current not in in_chain:
            steps.append(Step(len(steps) + 1, "all", (current,), reason))
            in_chain.add(current)
        covered = limit(current)
        if covered is None or covered >= amount:
            break
        current = stand_in(managers.get(current))
        reason = "manager_chain"
    for rule in policy.rules:
        if not rule.when.matches(req.categories, amount, req.cost_center):
            continue
        approvers: list[str] = []
        for a in rule.approvers:
            person = stand_in(a)
            if person is not None and person not in in_chain and person not in approvers:
                approvers.append(person)
        if approvers:
            steps.append(Step(len(steps) + 1, rule.mode, tuple(approvers), f"rule:{rule.name}"))
            in_chain.update(approvers)
    if not steps:
        raise RoutingError("cost_center", "no_approver",
                           "nobody in the org chart may approve this requisition")
    return Chain(auto_approved=False, amount_base=amount, steps=tuple(steps))


def escalation_target(assignee: str, managers: dict[str, str], requester: str,
                      excluded: frozenset[str] = frozenset()) -> str | None:
    """Who takes an overdue task: the assignee's manager, never the requester."""
    target = managers.get(assignee)
    hops = 0
    while target is not None and (target == requester or target in excluded) and hops <= len(managers):
        target = managers.get(target)
        hops += 1
    return target


# -- decisions -----------------------------------------------------------------------------

class DecisionRefused(Exception):
    """A decision the workflow must not record; `kind` maps to an HTTP status."""

    STATUS: ClassVar[dict[str, int]] = {"not_found": 404, "forbidden": 403, "conflict": 409, "invalid": 422}

    def __init__(self, kind: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.path = kind, message, path


@dataclass
class TaskState:
    task_id: str
    level: int
    assignee: str
    assigned_at: datetime
    status: str = "open"  # open | approved | rejected | changes_requested | superseded | cancelled
    reminders: int = 0
    escalations: int = 0
    can_escalate: bool = True  # False once nobody is left above the assignee
    decided_by: str | None = None
    on_behalf_of: str | None = None
    comment: str | None = None
    decided_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


def check_decision(task: TaskState | None, actor: str, acting_for: list[str] | tuple[str, ...],
                   decision: str, comment: str | None) -> str | None:
    """Raise DecisionRefused unless `actor` may record `decision`; returns on whose behalf."""
    if task is None:
        raise DecisionRefused("not_found", "no such task in this approval")
    if actor == task.assignee:
        on_behalf_of = None
    elif task.assignee in acting_for:
        on_behalf_of = task.assignee
    else:
        raise DecisionRefused("forbidden", f"the task is assigned to {task.assignee}, "
                                           f"and {actor} is not their current delegate")
    if not task.is_open:
        raise DecisionRefused("conflict", f"the task is already closed ({task.status})")
    if decision not in DECISIONS:
        raise DecisionRefused("invalid", f"decision must be one of {', '.join(DECISIONS)}",
                              "decision")
    if decision != "approve" and not (comment or "").strip():
        raise DecisionRefused("invalid", f"a comment is required to {decision.replace('_', ' ')}",
                              "comment")
    return on_behalf_of


def check_reassign(task: TaskState | None, actor: str, is_admin: bool, to: str,
                   known_users: frozenset[str], requester: str) -> None:
    if task is None:
        raise DecisionRefused("not_found", "no such task in this approval")
    if not is_admin and actor != task.assignee:
        raise DecisionRefused("forbidden", "only the assignee or an admin may reassign a task")
    if not task.is_open:
        raise DecisionRefused("conflict", f"the task is already closed ({task.status})")
    if to not in known_users:
        raise DecisionRefused("invalid", f"unknown user {to}", "to")
    if to == requester:
        raise DecisionRefused("invalid", "the requester cannot approve their own requisition", "to")
    if to == task.assignee:
        raise DecisionRefused("invalid", f"the task is already assigned to {to}", "to")


def level_outcome(mode: str, tasks: list[TaskState]) -> str | None:
    """approved | rejected | changes_requested once the level is settled, else None."""
    for t in tasks:
        if t.status in ("rejected", "changes_requested"):
            return t.status
    approved = [t for t in tasks if t.status == "approved"]
    if mode == "any" and approved:
        return "approved"
    if mode == "all" and tasks and len(approved) == len(tasks):
        return "approved"
    return None


@dataclass
class Timer:
    task_id: str
    kind: str  # reminder | escalation
    due: datetime


def due_timers(tasks: list[TaskState], reminder: timedelta, escalation: timedelta) -> list[Timer]:
    """The next reminder/escalation of every open task (each clock restarts on reassignment)."""
    out: list[Timer] = []
    for t in tasks:
        if not t.is_open:
            continue
        if t.reminders == 0 and reminder < escalation:
            out.append(Timer(t.task_id, "reminder", t.assigned_at + reminder))
        if t.can_escalate:
            out.append(Timer(t.task_id, "escalation", t.assigned_at + escalation))
    return out


@dataclass
class Delegation:
    user_id: str
    delegate_to: str
    starts_at: datetime
    ends_at: datetime

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


def check_delegation(user_id: str, delegate_to: str, starts_at: datetime, ends_at: datetime,
                     known_users: frozenset[str]) -> list[tuple[str, str, str]]:
    errors = []
    if delegate_to == user_id:
        errors.append(("delegate_to", "self", "you cannot delegate to yourself"))
    elif delegate_to not in known_users:
        errors.append(("delegate_to", "unknown_user", f"unknown user {delegate_to}"))
    if ends_at <= starts_at:
        errors.append(("ends_at", "after_start", "ends_at must be after starts_at"))
    return errors


def step_status(mode: str, task_statuses: list[str], opened: bool) -> str:
    if not opened:
        return "pending"
    for s in task_statuses:
        if s in ("rejected", "changes_requested"):
            return s
    if task_statuses and all(s == "cancelled" for s in task_statuses):
        return "cancelled"
    approved = [s for s in task_statuses if s == "approved"]
    if (mode == "any" and approved) or (mode == "all" and task_statuses
                                        and len(approved) == len(task_statuses)):
        return "approved"
    if any(s == "cancelled" for s in task_statuses):
        return "cancelled"
    return "open"


def workflow_id_for(requisition_id: str, submission: int) -> str:
    """`requisition-approval-<id>`; resubmission n ≥ 2 gets `requisition-approval-<id>-<n>`."""
    base = f"requisition-approval-{requisition_id}"
    return base if submission <= 1 else f"{base}-{submission}"
