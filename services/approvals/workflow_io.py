"""Inputs and outputs of `RequisitionApproval`: its run, updates, signal and activities.

Plain dataclasses in their own module so the workflow sandbox passes them through instead of
re-creating a dozen dataclasses for every workflow run (they hold no state and do no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepSpec:
    level: int
    mode: str  # all | any
    approvers: list[str]
    reason: str = ""


@dataclass
class ApprovalInput:
    requisition_id: str
    submission: int
    title: str
    requester: str
    amount: str  # decimal string, requisition currency
    currency: str
    policy_version: int
    steps: list[StepSpec]
    managers: dict[str, str]  # org chart snapshot of that policy version, for escalation
    reminder_after_seconds: float
    escalate_after_seconds: float
    submitted_at: str  # RFC 3339


@dataclass
class DecisionInput:
    task_id: str
    actor: str
    decision: str  # approve | reject | request_changes
    comment: str | None = None
    # Users whose current delegate the actor is (resolved by the API from the delegations).
    acting_for: list[str] = field(default_factory=list)


@dataclass
class ReassignInput:
    task_id: str
    actor: str
    to: str
    comment: str | None = None
    is_admin: bool = False
    known_users: list[str] = field(default_factory=list)


@dataclass
class CancelInput:
    by: str
    reason: str | None = None


@dataclass
class TaskChange:
    """open_task: a task (re)assigned: first assignment, escalation or reassignment."""

    workflow_id: str
    step: str
    requisition_id: str
    submission: int
    task_id: str
    level: int
    mode: str
    assignee: str
    title: str
    requester: str
    amount: str
    currency: str
    assigned_at: str
    due_at: str
    kind: str = "assigned"  # assigned | escalated | reassigned
    from_assignee: str | None = None
    by: str | None = None
    comment: str | None = None


@dataclass
class ReminderInput:
    workflow_id: str
    step: str
    requisition_id: str
    task_id: str
    assignee: str
    level: int
    sent_at: str


@dataclass
class DecisionRecord:
    workflow_id: str
    step: str
    requisition_id: str
    task_id: str
    level: int
    by: str
    on_behalf_of: str | None
    decision: str
    comment: str | None
    at: str


@dataclass
class CloseTasks:
    workflow_id: str
    step: str
    requisition_id: str
    task_ids: list[str]
    status: str  # superseded | cancelled
    at: str
    reason: str | None = None


@dataclass
class Finish:
    workflow_id: str
    step: str
    requisition_id: str
    submission: int
    outcome: str  # approved | rejected | changes_requested | cancelled
    decided_by: list[str]
    policy_version: int
    decided_at: str
    submitted_at: str
    comment: str | None = None


@dataclass
class ApprovalResult:
    outcome: str
    decided_by: list[str]
    policy_version: int
