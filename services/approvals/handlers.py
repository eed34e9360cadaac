"""Commands and event handlers of the approvals service: one unit of work each.

Consumers run in threads; the Temporal client is async and lives on uvicorn's event loop, so
calls go through `asyncio.run_coroutine_threadsafe(coro, loop).result()` on the loop captured
by the async start hook (`ApprovalService.bind`). HTTP routes that talk to Temporal are sync
routes (thread pool) and use the same bridge.

Auto-approval (amount below `auto_approve_below`) starts no workflow: the consumer writes the
approval row and `approval.decided` (`decided_by: ["policy"]`) through the outbox in the
consumer's own transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from services.approvals import store
from services.approvals.domain import (
    Chain,
    RoutingError,
    RoutingRequest,
    check_delegation,
    route,
    step_status,
    workflow_id_for,
)
from services.approvals.metrics import CYCLE, DECISIONS
from services.approvals.policy import POLICY_ACTOR, Policy, PolicyInvalid, parse_policy
from services.approvals.workflow_io import (
    ApprovalInput,
    CancelInput,
    DecisionInput,
    ReassignInput,
    StepSpec,
)
from services.approvals.workflows import RequisitionApproval
from shared.auth import User
from shared.contracts.approvals import ApprovalDecided
from shared.contracts.requisitions import RequisitionCancelled, RequisitionSubmitted
from shared.envelope import Envelope
from shared.errors import Conflict, Forbidden, NotFound, P2PError, Unprocessable, field_error
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)

TEMPORAL_CALL_TIMEOUT = 60.0
TEMPORAL_OUTAGE_WAIT = 120.0
LATEST_POLICY_TTL = 1.0


def now() -> datetime:
    return datetime.now(UTC)


def policy_errors(exc: PolicyInvalid) -> Unprocessable:
    return Unprocessable("the approval policy is invalid",
                         errors=[field_error(p, r, m) for p, r, m in exc.errors])


def load_policy_file(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def temporal_unavailable(detail: str) -> P2PError:
    return P2PError(f"Temporal is not available: {detail}", status=503, code="unavailable",
                    title="Service unavailable")


def refusal_to_error(kind: str, message: str, path: str | None) -> P2PError:
    if kind == "forbidden":
        return Forbidden(message)
    if kind == "conflict":
        return Conflict(message)
    if kind == "not_found":
        return NotFound(message)
    return Unprocessable(message, errors=[field_error(path or "decision",
                                                      "required" if path == "comment" else "invalid",
                                                      message)])


def decided_by_policy_history(approval: store.Approval) -> list[dict[str, Any]]:
    """Approvals decided on arrival (auto-approved, unroutable) keep no history rows."""
    if approval.decided_by != [POLICY_ACTOR] or approval.decided_at is None:
        return []
    return [{"at": approval.submitted_at, "kind": "submitted", "submission": approval.submission,
             "policy_version": approval.policy_version},
            {"at": approval.decided_at, "kind": approval.status, "by": [POLICY_ACTOR],
             "comment": approval.comment}]


class ApprovalService:
    """The approvals use cases, bound to the running service by its start hook."""

    def __init__(self) -> None:
        self.runtime: ServiceRuntime | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._policies: dict[int, Policy] = {}
        self._latest: tuple[int, float] | None = None  # (version, monotonic time read)

    # -- wiring ----------------------------------------------------------------------------
    async def bind(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.loop = asyncio.get_running_loop()
        runtime.extras["approvals"] = self

    @property
    def client(self) -> Client:
        assert self.runtime is not None
        return self.runtime.extras["temporal"]

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the service's event loop from a worker thread."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TEMPORAL_CALL_TIMEOUT)

    # -- policy ----------------------------------------------------------------------------
    def policy(self, session: Session, version: int | None = None) -> tuple[int, Policy]:
        if version is None:
            version = self._latest_version(session)
        if version not in self._policies:  # versions never change: parse each once
            row = store.policy_version(session, version)
            if row is None:
                raise NotFound(f"no policy version {version}")
            self._policies[version] = parse_policy(row.document)
        return version, self._policies[version]

    def _latest_version(self, session: Session) -> int:
        """The current version, re-read at most every LATEST_POLICY_TTL seconds (a PUT here
        takes effect at once; one on another replica within the TTL)."""
        if self._latest is not None and time.monotonic() - self._latest[1] < LATEST_POLICY_TTL:
            return self._latest[0]
        version = store.latest_policy_version(session)
        if version is None:
            raise NotFound("no approval policy is stored")
        self._latest = (version, time.monotonic())
        return version

    def seed_policy(self, runtime: ServiceRuntime) -> None:
        """First start: store `Settings.approval_policy` as version 1 (refuses an invalid file)."""
        with runtime.db.session() as session, session.begin():
            if store.latest_policy_version(session) is not None:
                return
            path = runtime.settings.approval_policy
            try:
                policy = parse_policy(load_policy_file(path))
            except PolicyInvalid as exc:
                raise RuntimeError(f"the approval policy {path} is invalid: {exc}") from exc
            version = store.add_policy(session, policy.document(), f"file:{path.name}")
            log.info("stored approval policy %s as version %d", path, version)

    def put_policy(self, session: Session, document: Any, user: User) -> tuple[int, Policy]:
        try:
            policy = parse_policy(document)
        except PolicyInvalid as exc:
            raise policy_errors(exc) from exc
        with session.begin():
            version = store.add_policy(session, policy.document(), user.id)
        self._policies[version] = policy
        self._latest = (version, time.monotonic())
        return version, policy

    # -- routing ---------------------------------------------------------------------------
    def preview(self, session: Session, request: RoutingRequest) -> tuple[int, Chain, Policy]:
        version, policy = self.policy(session)
        try:
            return version, route(request, policy), policy
        except RoutingError as exc:
            raise Unprocessable(exc.message, errors=[field_error(exc.path, exc.rule, exc.message)]) from exc

    # -- consumers -------------------------------------------------------------------------
    def on_submitted(self, session: Session, event: RequisitionSubmitted, envelope: Envelope) -> None:
        wf_id = workflow_id_for(event.requisition_id, event.submission)
        version, policy = self.policy(session)
        request = RoutingRequest(
            requester=event.requester, cost_center=event.cost_center, currency=event.currency,
            total=event.total, categories=frozenset(l.category for l in event.lines if l.category))
        at = now()
        row = {"workflow_id": wf_id, "requisition_id": event.requisition_id,
               "submission": event.submission, "title": event.title,
               "requester": event.requester, "cost_center": event.cost_center,
               "amount": event.total, "currency": event.currency, "policy_version": version,
               "submitted_at": event.submitted_at}
        try:
            chain = route(request, policy)
        except RoutingError as exc:
            # Nobody can approve it as submitted: send it back to the requester to fix.
            if store.insert_approval(session, **row, amount_base=None, status="changes_requested",
                                     steps=[], decided_at=at, decided_by=[POLICY_ACTOR],
                                     comment=exc.message):
                self._decided_by_policy(session, event, wf_id, version, "changes_requested",
                                        exc.message, at)
            return
        steps = [{"level": s.level, "mode": s.mode, "approvers": list(s.approvers),
                  "reason": s.reason} for s in chain.steps]
        if chain.auto_approved:
            comment = f"below the auto-approval threshold of {policy.auto_approve_below} {policy.base_currency}"
            if store.insert_approval(session, **row, amount_base=chain.amount_base,
                                     status="approved", steps=[], decided_at=at,
                                     decided_by=[POLICY_ACTOR], comment=comment):
                self._decided_by_policy(session, event, wf_id, version, "approved", comment, at)
            return
        if store.insert_approval(session, **row, amount_base=chain.amount_base, status="pending",
                                 steps=steps, decided_at=None, decided_by=None, comment=None):
            store.add_history(session, wf_id, at, "submitted", submission=event.submission,
                              policy_version=version, steps=steps, event_id=envelope.id)
        else:
            existing = store.get_approval(session, wf_id)
            if existing is not None and existing.status != "pending":
                return  # this submission was decided already: a redelivery or a duplicate
        # Pending: start it, or find it started (a redelivery after a crash, a duplicate).
        self.start_workflow(wf_id, ApprovalInput(
            requisition_id=event.requisition_id, submission=event.submission, title=event.title,
            requester=event.requester, amount=str(event.total), currency=event.currency,
            policy_version=version,
            steps=[StepSpec(level=s.level, mode=s.mode, approvers=list(s.approvers),
                            reason=s.reason) for s in chain.steps],
            managers=policy.managers(),
            reminder_after_seconds=policy.sla.reminder.total_seconds(),
            escalate_after_seconds=policy.sla.escalation.total_seconds(),
            submitted_at=event.submitted_at.isoformat()))

    def _decided_by_policy(self, session: Session, event: RequisitionSubmitted, wf_id: str,
                           version: int, outcome: str, comment: str, at: datetime) -> None:
        # No history rows: the approval row is the whole story (see approval_view).
        assert self.runtime is not None
        self.runtime.outbox.add(session, ApprovalDecided(
            requisition_id=event.requisition_id, outcome=outcome, decided_by=[POLICY_ACTOR],
            policy_version=version, decided_at=at, comment=comment, submission=event.submission),
            correlation_id=event.requisition_id)
        DECISIONS.labels(outcome).inc()
        CYCLE.observe(max((at - event.submitted_at).total_seconds(), 0.0))

    def start_workflow(self, wf_id: str, inp: ApprovalInput) -> None:
        """Start (once: the id is deterministic and never reused) the approval workflow.

        While Temporal is unreachable the consumer waits here (up to TEMPORAL_OUTAGE_WAIT)
        instead of burning its few attempts and parking the submission in the DLQ.
        """
        assert self.runtime is not None
        deadline = time.monotonic() + TEMPORAL_OUTAGE_WAIT
        backoff = 0.2
        while True:
            try:
                self.call(self.client.start_workflow(
                    RequisitionApproval.run, inp, id=wf_id,
                    task_queue=self.runtime.settings.temporal_task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE))
                return
            except WorkflowAlreadyStartedError:
                log.info("approval workflow %s already exists; not starting another", wf_id)
                return
            except RPCError as exc:
                transient = exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
                if not transient or time.monotonic() > deadline or self.runtime.stop.is_set():
                    raise
                log.warning("Temporal unavailable (%s); retrying in %.1fs", exc, backoff)
                self.runtime.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def on_cancelled(self, session: Session, event: RequisitionCancelled, envelope: Envelope) -> None:
        approval = store.latest_approval(session, event.requisition_id)
        if approval is None or approval.status != "pending":
            return
        store.add_history(session, approval.workflow_id, now(), "cancel_requested",
                          by=event.cancelled_by, reason=event.reason, event_id=envelope.id)
        try:
            self.call(self.client.get_workflow_handle(approval.workflow_id).signal(
                RequisitionApproval.cancel, CancelInput(by=event.cancelled_by, reason=event.reason)))
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            log.info("approval %s already finished; nothing to cancel", approval.workflow_id)

    # -- tasks -----------------------------------------------------------------------------
    def _execute_update(self, workflow_id: str, update: Any, arg: Any) -> dict[str, Any]:
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            return self.call(handle.execute_update(update, arg))
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                details = cause.details[0] if cause.details else {}
                path = details.get("path") if isinstance(details, dict) else None
                raise refusal_to_error(cause.type or "invalid", cause.message, path) from exc
            raise
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict("the approval is already closed") from exc
            raise temporal_unavailable(str(exc)) from exc
        except FutureTimeout as exc:
            raise temporal_unavailable("no answer from the approval workflow in time") from exc

    def decide(self, session: Session, task_id: str, user: User, decision: str,
               comment: str | None) -> dict[str, Any]:
        task = store.get_task(session, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        acting_for = store.principals_of(session, user.id, now())
        workflow_id = task.workflow_id
        session.rollback()  # release the connection while the workflow decides
        return self._execute_update(workflow_id, RequisitionApproval.decide, DecisionInput(
            task_id=task_id, actor=user.id, decision=decision, comment=comment,
            acting_for=acting_for))

    def reassign(self, session: Session, task_id: str, user: User, to: str,
                 comment: str | None) -> dict[str, Any]:
        task = store.get_task(session, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        _, policy = self.policy(session)
        workflow_id = task.workflow_id
        session.rollback()
        return self._execute_update(workflow_id, RequisitionApproval.reassign, ReassignInput(
            task_id=task_id, actor=user.id, to=to, comment=comment, is_admin=user.has("admin"),
            known_users=[u.id for u in policy.users]))

    # -- delegations -----------------------------------------------------------------------
    def set_delegation(self, session: Session, user: User, delegate_to: str,
                       starts_at: datetime, ends_at: datetime) -> None:
        with session.begin():
            _, policy = self.policy(session)
            errors = check_delegation(user.id, delegate_to, starts_at, ends_at,
                                      frozenset(u.id for u in policy.users))
            if errors:
                raise Unprocessable("the delegation is invalid",
                                    errors=[field_error(p, r, m) for p, r, m in errors])
            store.set_delegation(session, user.id, delegate_to, starts_at, ends_at)

    def clear_delegation(self, session: Session, user: User) -> None:
        with session.begin():
            if not store.delete_delegation(session, user.id):
                raise NotFound("you have no delegation")

    # -- reads -----------------------------------------------------------------------------
    def approval_view(self, session: Session, requisition_id: str, user: User,
                      submission: int | None = None) -> dict[str, Any]:
        approval = (store.latest_approval(session, requisition_id) if submission is None else
                    store.get_approval(session, workflow_id_for(requisition_id, submission)))
        if approval is None:
            raise NotFound(f"no approval for requisition {requisition_id}"
                           + (f" submission {submission}" if submission else ""))
        tasks = store.tasks_of(session, approval.workflow_id)
        decisions = store.decisions_of(session, approval.workflow_id)
        involved = {approval.requester} | {t.assignee for t in tasks} | {
            t.original_assignee for t in tasks} | {d.by for d in decisions}
        if user.id not in involved and not user.has("admin", "auditor"):
            raise Forbidden("only the requester, the approvers, admins and auditors may see this")
        steps = []
        for spec in approval.steps:
            level_tasks = [t for t in tasks if t.level == spec["level"]]
            steps.append({
                "level": spec["level"], "mode": spec["mode"], "approvers": spec["approvers"],
                "reason": spec.get("reason"),
                "status": step_status(spec["mode"], [t.status for t in level_tasks],
                                      bool(level_tasks)),
                "tasks": [{"task_id": t.task_id, "assignee": t.assignee,
                           "original_assignee": t.original_assignee, "status": t.status,
                           "assigned_at": t.assigned_at, "due_at": t.due_at,
                           "closed_at": t.closed_at} for t in level_tasks],
                "decisions": [{"by": d.by, "on_behalf_of": d.on_behalf_of,
                               "decision": d.decision, "comment": d.comment, "at": d.at,
                               "task_id": d.task_id}
                              for d in decisions if d.level == spec["level"]],
            })
        return {
            "requisition_id": approval.requisition_id, "submission": approval.submission,
            "workflow_id": approval.workflow_id, "status": approval.status,
            "policy_version": approval.policy_version,
            "auto_approved": approval.decided_by == [POLICY_ACTOR] and not approval.steps,
            "title": approval.title, "requester": approval.requester,
            "amount": money(approval.amount),
            "currency": approval.currency,
            "submitted_at": approval.submitted_at, "decided_at": approval.decided_at,
            "decided_by": approval.decided_by or [], "comment": approval.comment,
            "steps": steps,
            "history": [{"at": h.at, "kind": h.kind, **h.detail}
                        for h in store.history(session, approval.workflow_id)]
            or decided_by_policy_history(approval),
        }


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"

