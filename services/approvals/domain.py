"""Approval rules as pure code: routing, and what a decision may do.

Nothing here touches the database, HTTP, Kafka or Temporal: the workflow, the API and the
consumer all call these functions with plain values. The policy document is in policy.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar

from services.approvals.policy import Policy

DECISIONS = ("approve", "reject", "request_changes")
OUTCOME_OF = {"approve": "approved", "reject": "rejected", "request_changes": "changes_requested"}


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
    rate = policy.rate(req.currency)
    if rate is None:
        raise RoutingError("currency", "fx_rate_missing",
                           f"the policy has no FX rate for {req.currency}")
    amount = req.total * rate
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
