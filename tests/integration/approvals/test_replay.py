"""Determinism: histories recorded on the server replay against the current workflow code."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from services.approvals.workflow_io import CancelInput, DecisionInput
from services.approvals.workflows import RequisitionApproval
from tests.integration.approvals.wf_support import approval_env, approval_input, open_tasks, start

pytestmark = pytest.mark.integration

HISTORIES = Path(__file__).parent / "histories"


async def record_history(requisition_id: str | None = None) -> WorkflowHistory:
    """Reminder, escalation, a delegate's approval, then a rejection at level 2."""
    async with approval_env() as (env, rec, queue):
        h = await start_and_walk(env, rec, queue, requisition_id)
        return await h.fetch_history()


async def start_and_walk(env, rec, queue, requisition_id):
    h = await start(env, queue, approval_input(("all", ["bob"]), ("any", ["carol", "ivan"]),
                                               requisition_id=requisition_id))
    [task] = await open_tasks(rec, 1)
    await env.sleep(timedelta(hours=49))
    await open_tasks(rec, 2)  # escalated to carol
    await h.execute_update(RequisitionApproval.decide, DecisionInput(
        task.task_id, "quinn", "approve", acting_for=["carol"]))
    level2 = (await open_tasks(rec, 4))[2:]
    await h.execute_update(RequisitionApproval.decide, DecisionInput(
        level2[1].task_id, "ivan", "reject", "over budget"))
    assert (await h.result()).outcome == "rejected"
    return h


def test_a_freshly_recorded_history_replays():
    async def scenario() -> None:
        history = await record_history()
        kinds = {e.event_type for e in history.events}
        assert len(kinds) > 5 and len(history.events) > 20
        await Replayer(workflows=[RequisitionApproval]).replay_workflow(history)
    asyncio.run(scenario())


@pytest.mark.parametrize("name", sorted(p.name for p in HISTORIES.glob("*.json")))
def test_checked_in_histories_replay(name: str):
    path = HISTORIES / name
    # The file is named after the workflow id: replay needs the id the history was made with.
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    asyncio.run(Replayer(workflows=[RequisitionApproval]).replay_workflow(history))


def test_a_cancelled_history_replays():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob"])))
            await open_tasks(rec, 1)
            await env.sleep(timedelta(hours=30))
            await h.signal(RequisitionApproval.cancel, CancelInput(by="alice"))
            assert (await h.result()).outcome == "cancelled"
            history = await h.fetch_history()
        await Replayer(workflows=[RequisitionApproval]).replay_workflow(history)
    asyncio.run(scenario())


if __name__ == "__main__":  # regenerate the checked-in history after an intended change
    recorded = asyncio.run(record_history("R-HISTORY-1"))
    (HISTORIES / f"{recorded.workflow_id}.json").write_text(recorded.to_json())
