"""Time-skipping Temporal test server + the approval workflow with activities mocked by name."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.approvals.workflow_io import (
    ApprovalInput,
    CloseTasks,
    DecisionRecord,
    Finish,
    ReminderInput,
    StepSpec,
    TaskChange,
)
from services.approvals.workflows import RequisitionApproval

MANAGERS = {"alice": "bob", "bob": "carol", "carol": "dana", "ivan": "carol", "quinn": "carol"}


def server_path() -> str:
    return shutil.which("temporal-test-server") or str(Path(sys.executable).parent / "temporal-test-server")


@dataclass
class Recorder:
    """Fake activities (registered under the real names) that record what the workflow asked."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def of(self, name: str) -> list[Any]:
        return [arg for n, arg in self.calls if n == name]

    def activities(self) -> list[Callable]:
        @activity.defn(name="open_task")
        async def open_task(c: TaskChange) -> None:
            self.calls.append(("open_task", c))

        @activity.defn(name="send_reminder")
        async def send_reminder(r: ReminderInput) -> None:
            self.calls.append(("send_reminder", r))

        @activity.defn(name="record_decision")
        async def record_decision(d: DecisionRecord) -> None:
            self.calls.append(("record_decision", d))

        @activity.defn(name="close_tasks")
        async def close_tasks(c: CloseTasks) -> None:
            self.calls.append(("close_tasks", c))

        @activity.defn(name="finish")
        async def finish(f: Finish) -> None:
            self.calls.append(("finish", f))

        return [open_task, send_reminder, record_decision, close_tasks, finish]


def approval_input(*levels: tuple[str, list[str]], requester: str = "alice",
                   reminder_h: float = 24, escalate_h: float = 48,
                   requisition_id: str | None = None) -> ApprovalInput:
    return ApprovalInput(
        requisition_id=requisition_id or f"R-{uuid.uuid4().hex[:8]}", submission=1, title="Laptops",
        requester=requester, amount="6000.00", currency="EUR", policy_version=1,
        steps=[StepSpec(level=i + 1, mode=mode, approvers=approvers)
               for i, (mode, approvers) in enumerate(levels)],
        managers=dict(MANAGERS), reminder_after_seconds=reminder_h * 3600,
        escalate_after_seconds=escalate_h * 3600, submitted_at=datetime.now(UTC).isoformat())


@asynccontextmanager
async def approval_env():
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server_path())
    recorder = Recorder()
    queue = f"approvals-test-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(env.client, task_queue=queue, workflows=[RequisitionApproval],
                          activities=recorder.activities()):
            yield env, recorder, queue
    finally:
        await env.shutdown()


async def start(env: WorkflowEnvironment, queue: str, inp: ApprovalInput) -> WorkflowHandle:
    return await env.client.start_workflow(RequisitionApproval.run, inp,
                                           id=f"requisition-approval-{inp.requisition_id}",
                                           task_queue=queue)


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll with a (wall-clock) deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the workflow")
        await asyncio.sleep(0.02)


async def open_tasks(recorder: Recorder, count: int) -> list[TaskChange]:
    await until(lambda: len(recorder.of("open_task")) >= count)
    return recorder.of("open_task")
