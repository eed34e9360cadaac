"""The `RequisitionApproval` workflow: deterministic code only (no I/O, clock or randomness).

It walks the levels of a chain routed at submission time (the policy version is snapshotted in
its input), opens tasks through activities, takes decisions and reassignments as workflow
updates whose validators refuse wrong users, closed tasks and missing comments before anything
reaches the history, sends reminders and escalates on durable timers, and ends on the first
reject / request_changes, after the last level, or on the `cancel` signal.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.approvals.domain import (
        OUTCOME_OF,
        DecisionRefused,
        TaskState,
        check_decision,
        check_reassign,
        due_timers,
        escalation_target,
        level_outcome,
    )
    from services.approvals.workflow_io import (
        ApprovalInput,
        ApprovalResult,
        CancelInput,
        CloseTasks,
        DecisionInput,
        DecisionRecord,
        Finish,
        ReassignInput,
        ReminderInput,
        TaskChange,
    )

WORKFLOW_NAME = "RequisitionApproval"
_TASK_NS = uuid.UUID("6f1c0a52-3d0e-4d8e-9a43-5b0f6f0b2a11")


def task_id_for(workflow_id: str, level: int, approver: str) -> str:
    return str(uuid.uuid5(_TASK_NS, f"{workflow_id}/{level}/{approver}"))


_ACTIVITY_OPTS: dict = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200),
                                maximum_interval=timedelta(seconds=30)),
}


async def _activity(name: str, arg: object) -> None:
    """DB + outbox writes are short and idempotent: local activities, no server round trip
    to schedule them (retried by the worker, and re-run on replay only if not completed)."""
    await workflow.execute_local_activity(name, arg, **_ACTIVITY_OPTS)


def _refusal(exc: DecisionRefused) -> ApplicationError:
    return ApplicationError(exc.message, {"path": exc.path}, type=exc.kind, non_retryable=True)


@workflow.defn(name=WORKFLOW_NAME)
class RequisitionApproval:
    @workflow.init
    def __init__(self, inp: ApprovalInput) -> None:
        self._input: ApprovalInput = inp
        self._tasks: dict[str, TaskState] = {}
        self._modes: dict[int, str] = {}
        self._changes = 0
        self._seq = 0
        self._cancel: CancelInput | None = None
        self._status = "pending"

    # -- helpers ---------------------------------------------------------------------------
    def _step(self, kind: str, task_id: str = "") -> str:
        self._seq += 1
        return f"{self._seq:04d}:{kind}:{task_id}"

    def _touch(self) -> None:
        self._changes += 1

    async def _open(self, t: TaskState, kind: str, from_assignee: str | None = None,
                    by: str | None = None, comment: str | None = None) -> None:
        inp = self._input
        due = t.assigned_at + timedelta(seconds=inp.escalate_after_seconds)
        await _activity(
            "open_task",
            TaskChange(
                workflow_id=workflow.info().workflow_id, step=self._step(kind, t.task_id),
                requisition_id=inp.requisition_id, submission=inp.submission,
                task_id=t.task_id, level=t.level, mode=self._modes[t.level],
                assignee=t.assignee, title=inp.title, requester=inp.requester,
                amount=inp.amount, currency=inp.currency,
                assigned_at=t.assigned_at.isoformat(), due_at=due.isoformat(),
                kind=kind, from_assignee=from_assignee, by=by, comment=comment,
            ))

    async def _close(self, tasks: list[TaskState], status: str, reason: str | None) -> None:
        still_open = [t for t in tasks if t.is_open]
        if not still_open:
            return
        for t in still_open:
            t.status = status
        inp = self._input
        await _activity(
            "close_tasks",
            CloseTasks(workflow_id=workflow.info().workflow_id, step=self._step("close"),
                       requisition_id=inp.requisition_id,
                       task_ids=[t.task_id for t in still_open], status=status,
                       at=workflow.now().isoformat(), reason=reason))

    async def _fire(self, t: TaskState, kind: str) -> None:
        inp = self._input
        now = workflow.now()
        if kind == "reminder":
            t.reminders += 1
            await _activity(
                "send_reminder",
                ReminderInput(workflow_id=workflow.info().workflow_id,
                              step=self._step("remind", t.task_id),
                              requisition_id=inp.requisition_id, task_id=t.task_id,
                              assignee=t.assignee, level=t.level, sent_at=now.isoformat()))
            return
        target = escalation_target(t.assignee, inp.managers, inp.requester)
        if target is None:
            t.can_escalate = False  # nobody above: the reminder stands, the task stays
            return
        previous = t.assignee
        t.assignee, t.assigned_at, t.reminders = target, now, 0
        t.escalations += 1
        await self._open(t, "escalated", from_assignee=previous)

    async def _wait_level(self, mode: str, tasks: list[TaskState]) -> str | None:
        inp = self._input
        reminder = timedelta(seconds=inp.reminder_after_seconds)
        escalation = timedelta(seconds=inp.escalate_after_seconds)
        while True:
            outcome = level_outcome(mode, tasks)
            if outcome is not None:
                return outcome
            if self._cancel is not None:
                return None
            now = workflow.now()
            timers = due_timers(tasks, reminder, escalation)
            due = [tm for tm in timers if tm.due <= now]
            if due:
                for tm in sorted(due, key=lambda x: (x.due, x.task_id, x.kind)):
                    t = self._tasks[tm.task_id]
                    if t.is_open:
                        await self._fire(t, tm.kind)
                continue
            seen = self._changes
            timeout = min(tm.due for tm in timers) - now if timers else None
            try:
                await workflow.wait_condition(lambda seen=seen: self._changes != seen,
                                              timeout=timeout)
            except TimeoutError:
                pass

    # -- the run ---------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: ApprovalInput) -> ApprovalResult:
        wf_id = workflow.info().workflow_id
        outcome = "approved"
        deciders: list[str] = []
        comment: str | None = None
        for spec in inp.steps:
            if self._cancel is not None:
                break
            self._modes[spec.level] = spec.mode
            tasks = [TaskState(task_id=task_id_for(wf_id, spec.level, a), level=spec.level,
                               assignee=a, assigned_at=workflow.now()) for a in spec.approvers]
            for t in tasks:
                self._tasks[t.task_id] = t
            for t in tasks:
                await self._open(t, "assigned")
            result = await self._wait_level(spec.mode, tasks)
            if result is None:
                break
            await self._close(tasks, "superseded", f"level {spec.level} {result}")
            settled_by = [t for t in tasks if t.status == result and t.decided_by]
            if result != "approved":
                # Who stopped it decides it; earlier approvals are in the steps' decisions.
                outcome, deciders = result, [settled_by[0].decided_by or ""]
                comment = settled_by[0].comment
                break
            for t in settled_by:
                if t.decided_by not in deciders:
                    deciders.append(t.decided_by or "")
        if self._cancel is not None:
            outcome = "cancelled"
            deciders = [self._cancel.by]
            comment = self._cancel.reason
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._close(list(self._tasks.values()), "cancelled" if outcome == "cancelled"
                          else "superseded", outcome)
        self._status = outcome
        await _activity(
            "finish",
            Finish(workflow_id=wf_id, step=self._step("finish"), requisition_id=inp.requisition_id,
                   submission=inp.submission, outcome=outcome, decided_by=deciders,
                   policy_version=inp.policy_version, decided_at=workflow.now().isoformat(),
                   submitted_at=inp.submitted_at, comment=comment))
        return ApprovalResult(outcome=outcome, decided_by=deciders,
                              policy_version=inp.policy_version)

    # -- messages --------------------------------------------------------------------------
    @workflow.signal
    def cancel(self, inp: CancelInput) -> None:
        if self._cancel is None:
            self._cancel = inp
            self._touch()

    @workflow.query
    def status(self) -> dict:
        return {
            "status": self._status,
            "tasks": [{"task_id": t.task_id, "level": t.level, "assignee": t.assignee,
                       "status": t.status, "reminders": t.reminders,
                       "escalations": t.escalations} for t in self._tasks.values()],
        }

    @workflow.update
    async def decide(self, d: DecisionInput) -> dict:
        t = self._tasks.get(d.task_id)
        try:
            on_behalf_of = check_decision(t, d.actor, d.acting_for, d.decision, d.comment)
        except DecisionRefused as exc:  # two decisions raced past their validators
            raise _refusal(exc) from None
        assert t is not None
        t.status = "deciding"  # refuses a second decision while this one is recorded
        at = workflow.now()
        await _activity(
            "record_decision",
            DecisionRecord(workflow_id=workflow.info().workflow_id,
                           step=self._step("decide", t.task_id),
                           requisition_id=self._input.requisition_id, task_id=t.task_id,
                           level=t.level, by=d.actor, on_behalf_of=on_behalf_of,
                           decision=d.decision, comment=d.comment, at=at.isoformat()))
        t.status = OUTCOME_OF[d.decision]
        t.decided_by, t.on_behalf_of, t.comment, t.decided_at = d.actor, on_behalf_of, d.comment, at
        self._touch()
        return {"task_id": t.task_id, "status": t.status, "by": d.actor,
                "on_behalf_of": on_behalf_of, "at": at.isoformat()}

    @decide.validator
    def _validate_decide(self, d: DecisionInput) -> None:
        if self._cancel is not None:
            raise ApplicationError("the approval was cancelled", type="conflict",
                                   non_retryable=True)
        try:
            check_decision(self._tasks.get(d.task_id), d.actor, d.acting_for, d.decision,
                           d.comment)
        except DecisionRefused as exc:
            raise _refusal(exc) from None

    @workflow.update
    async def reassign(self, r: ReassignInput) -> dict:
        t = self._tasks.get(r.task_id)
        try:
            check_reassign(t, r.actor, r.is_admin, r.to, frozenset(r.known_users),
                           self._input.requester)
        except DecisionRefused as exc:
            raise _refusal(exc) from None
        assert t is not None
        previous = t.assignee
        t.assignee, t.assigned_at, t.reminders, t.can_escalate = r.to, workflow.now(), 0, True
        await self._open(t, "reassigned", from_assignee=previous, by=r.actor, comment=r.comment)
        self._touch()
        return {"task_id": t.task_id, "assignee": t.assignee, "from": previous}

    @reassign.validator
    def _validate_reassign(self, r: ReassignInput) -> None:
        if self._cancel is not None:
            raise ApplicationError("the approval was cancelled", type="conflict",
                                   non_retryable=True)
        try:
            check_reassign(self._tasks.get(r.task_id), r.actor, r.is_admin, r.to,
                           frozenset(r.known_users), self._input.requester)
        except DecisionRefused as exc:
            raise _refusal(exc) from None
