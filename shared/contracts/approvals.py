"""Events produced by the approvals service (topic `p2p.approvals`, keyed by requisition id)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from shared import topics
from shared.contracts.base import Contract, DecimalStr


class _ApprovalEvent(Contract):
    topic: ClassVar[str] = topics.APPROVALS
    key_field: ClassVar[str] = "requisition_id"
    requisition_id: str


class ApprovalTaskAssigned(_ApprovalEvent):
    ce_type: ClassVar[str] = "p2p.approval.task_assigned.v1"

    task_id: str
    assignee: str
    level: int
    # Set when the task went to a delegate: the person the task belongs to.
    on_behalf_of: str | None = None
    amount: DecimalStr | None = None
    currency: str | None = None
    assigned_at: datetime
    due_at: datetime | None = None


class ApprovalReminderSent(_ApprovalEvent):
    ce_type: ClassVar[str] = "p2p.approval.reminder_sent.v1"

    task_id: str
    assignee: str
    level: int
    sent_at: datetime


class ApprovalEscalated(_ApprovalEvent):
    ce_type: ClassVar[str] = "p2p.approval.escalated.v1"

    task_id: str
    level: int
    from_assignee: str
    to_assignee: str
    escalated_at: datetime


class ApprovalDecided(_ApprovalEvent):
    ce_type: ClassVar[str] = "p2p.approval.decided.v1"

    outcome: Literal["approved", "rejected", "changes_requested"]
    decided_by: list[str]
    policy_version: int
    decided_at: datetime
    comment: str | None = None
    # Which submission of the requisition this decision answers (see RequisitionSubmitted).
    submission: int = 1


EVENTS = (ApprovalTaskAssigned, ApprovalReminderSent, ApprovalEscalated, ApprovalDecided)
