"""Activities of `RequisitionApproval`: every database and outbox write of the workflow.

The workflow runs them as local activities (short DB transactions in this process).

Each activity runs one transaction that first claims its step (workflow id + step key) in
`applied_steps`; a retried activity finds the step claimed and does nothing, so projections,
history and events happen exactly once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from temporalio import activity

from services.approvals import store
from services.approvals.metrics import CYCLE, DECISIONS, TASKS_OPEN
from services.approvals.workflow_io import (
    CloseTasks,
    DecisionRecord,
    Finish,
    ReminderInput,
    TaskChange,
)
from shared.contracts.approvals import (
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalReminderSent,
    ApprovalTaskAssigned,
)
from shared.db import Database
from shared.outbox import Outbox


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


class ApprovalActivities:
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox

    def all(self) -> list:
        return [self.open_task, self.send_reminder, self.record_decision, self.close_tasks,
                self.finish]

    def refresh_open_tasks_gauge(self) -> None:
        with self.db.session() as session:
            TASKS_OPEN.set(store.count_open_tasks(session))

    @activity.defn(name="open_task")
    def open_task(self, c: TaskChange) -> None:
        at = _ts(c.assigned_at)
        with self.db.session() as session, session.begin():
            if not store.claim_step(session, c.workflow_id, c.step):
                return
            store.upsert_task(session, task_id=c.task_id, workflow_id=c.workflow_id,
                              requisition_id=c.requisition_id, level=c.level, mode=c.mode,
                              assignee=c.assignee, title=c.title, requester=c.requester,
                              amount=Decimal(c.amount), currency=c.currency, assigned_at=at,
                              due_at=_ts(c.due_at))
            delegate = store.active_delegate(session, c.assignee, at)
            cid = c.requisition_id
            if c.kind == "escalated" and c.from_assignee:
                self.outbox.add(session, ApprovalEscalated(
                    requisition_id=c.requisition_id, task_id=c.task_id, level=c.level,
                    from_assignee=c.from_assignee, to_assignee=c.assignee, escalated_at=at),
                    correlation_id=cid)
            self.outbox.add(session, ApprovalTaskAssigned(
                requisition_id=c.requisition_id, task_id=c.task_id,
                assignee=delegate or c.assignee, on_behalf_of=c.assignee if delegate else None,
                level=c.level, amount=Decimal(c.amount), currency=c.currency, assigned_at=at,
                due_at=_ts(c.due_at)), correlation_id=cid)
            store.add_history(session, c.workflow_id, at, f"task_{c.kind}", task_id=c.task_id,
                              level=c.level, assignee=c.assignee, delegate=delegate,
                              from_assignee=c.from_assignee, by=c.by, comment=c.comment)
        self.refresh_open_tasks_gauge()

    @activity.defn(name="send_reminder")
    def send_reminder(self, r: ReminderInput) -> None:
        at = _ts(r.sent_at)
        with self.db.session() as session, session.begin():
            if not store.claim_step(session, r.workflow_id, r.step):
                return
            self.outbox.add(session, ApprovalReminderSent(
                requisition_id=r.requisition_id, task_id=r.task_id, assignee=r.assignee,
                level=r.level, sent_at=at), correlation_id=r.requisition_id)
            store.add_history(session, r.workflow_id, at, "reminder_sent", task_id=r.task_id,
                              level=r.level, assignee=r.assignee)

    @activity.defn(name="record_decision")
    def record_decision(self, d: DecisionRecord) -> None:
        at = _ts(d.at)
        status = {"approve": "approved", "reject": "rejected",
                  "request_changes": "changes_requested"}[d.decision]
        with self.db.session() as session, session.begin():
            if not store.claim_step(session, d.workflow_id, d.step):
                return
            store.close_task(session, d.task_id, status, at)
            store.add_decision(session, workflow_id=d.workflow_id, task_id=d.task_id,
                               level=d.level, by=d.by, on_behalf_of=d.on_behalf_of,
                               decision=d.decision, comment=d.comment, at=at)
            store.add_history(session, d.workflow_id, at, "decision", task_id=d.task_id,
                              level=d.level, by=d.by, on_behalf_of=d.on_behalf_of,
                              decision=d.decision, comment=d.comment)
        self.refresh_open_tasks_gauge()

    @activity.defn(name="close_tasks")
    def close_tasks(self, c: CloseTasks) -> None:
        at = _ts(c.at)
        with self.db.session() as session, session.begin():
            if not store.claim_step(session, c.workflow_id, c.step):
                return
            closed = store.close_open_tasks(session, c.task_ids, c.status, at)
            if closed:
                store.add_history(session, c.workflow_id, at, f"tasks_{c.status}",
                                  task_ids=c.task_ids, reason=c.reason)
        self.refresh_open_tasks_gauge()

    @activity.defn(name="finish")
    def finish(self, f: Finish) -> None:
        at = _ts(f.decided_at)
        with self.db.session() as session, session.begin():
            if not store.claim_step(session, f.workflow_id, f.step):
                return
            store.finish_approval(session, f.workflow_id, f.outcome, at, f.decided_by, f.comment)
            store.add_history(session, f.workflow_id, at, f.outcome, by=f.decided_by,
                              comment=f.comment)
            if f.outcome != "cancelled":
                self.outbox.add(session, ApprovalDecided(
                    requisition_id=f.requisition_id, outcome=f.outcome,
                    decided_by=f.decided_by, policy_version=f.policy_version, decided_at=at,
                    comment=f.comment, submission=f.submission),
                    correlation_id=f.requisition_id)
        if f.outcome != "cancelled":
            DECISIONS.labels(f.outcome).inc()
            CYCLE.observe(max((at - _ts(f.submitted_at)).total_seconds(), 0.0))
