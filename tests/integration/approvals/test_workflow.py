"""RequisitionApproval on the time-skipping test server: days of timers in milliseconds."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from services.approvals.workflow_io import CancelInput, DecisionInput, ReassignInput
from services.approvals.workflows import RequisitionApproval
from tests.integration.approvals.wf_support import (
    approval_env,
    approval_input,
    open_tasks,
    start,
    until,
)

pytestmark = pytest.mark.integration


def run(coro):
    return asyncio.run(coro)


async def refused(handle, decision: DecisionInput) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(RequisitionApproval.decide, decision)
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause


def test_levels_are_walked_in_order_and_the_last_approval_approves():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob"]), ("all", ["carol"])))
            [first] = await open_tasks(rec, 1)
            assert first.assignee == "bob" and first.level == 1 and first.kind == "assigned"
            await h.execute_update(RequisitionApproval.decide,
                                   DecisionInput(first.task_id, "bob", "approve"))
            second = (await open_tasks(rec, 2))[1]
            assert second.assignee == "carol" and second.level == 2
            await h.execute_update(RequisitionApproval.decide,
                                   DecisionInput(second.task_id, "carol", "approve", "ok"))
            result = await h.result()
            assert result.outcome == "approved" and result.decided_by == ["bob", "carol"]
            [fin] = rec.of("finish")
            assert fin.outcome == "approved" and fin.policy_version == 1
            assert [d.by for d in rec.of("record_decision")] == ["bob", "carol"]
    run(scenario())


def test_reminder_after_a_day_and_escalation_to_the_manager_after_two():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob"])))
            [task] = await open_tasks(rec, 1)
            await env.sleep(timedelta(hours=23))
            assert rec.of("send_reminder") == []
            await env.sleep(timedelta(hours=2))
            await until(lambda: rec.of("send_reminder"))
            [reminder] = rec.of("send_reminder")
            assert reminder.assignee == "bob" and reminder.task_id == task.task_id
            await env.sleep(timedelta(hours=24))
            escalated = (await open_tasks(rec, 2))[1]
            assert escalated.kind == "escalated" and escalated.task_id == task.task_id
            assert (escalated.from_assignee, escalated.assignee) == ("bob", "carol")
            # bob no longer holds the task; carol decides.
            cause = await refused(h, DecisionInput(task.task_id, "bob", "approve"))
            assert cause.type == "forbidden"
            await h.execute_update(RequisitionApproval.decide,
                                   DecisionInput(task.task_id, "carol", "approve"))
            assert (await h.result()).decided_by == ["carol"]
    run(scenario())


def test_escalation_skips_the_requester_and_stops_at_the_top():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            # carol requests; bob's manager is carol, so escalation goes to dana; then nobody.
            h = await start(env, queue, approval_input(("all", ["bob"]), requester="carol"))
            await open_tasks(rec, 1)
            await env.sleep(timedelta(hours=49))
            escalated = (await open_tasks(rec, 2))[1]
            assert escalated.assignee == "dana"
            await env.sleep(timedelta(days=10))
            assert len(rec.of("open_task")) == 2  # dana has no manager: the task stays hers
            state = await h.query(RequisitionApproval.status)
            assert state["tasks"][0]["assignee"] == "dana" and state["status"] == "pending"
    run(scenario())


def test_a_delegate_decides_on_behalf_of_the_assignee():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob"])))
            [task] = await open_tasks(rec, 1)
            cause = await refused(h, DecisionInput(task.task_id, "ivan", "approve"))
            assert cause.type == "forbidden"
            out = await h.execute_update(RequisitionApproval.decide, DecisionInput(
                task.task_id, "ivan", "approve", acting_for=["bob"]))
            assert out["on_behalf_of"] == "bob" and out["by"] == "ivan"
            [rec_d] = rec.of("record_decision")
            assert (rec_d.by, rec_d.on_behalf_of) == ("ivan", "bob")
            assert (await h.result()).outcome == "approved"
    run(scenario())


@pytest.mark.parametrize(("decision", "outcome"), [("reject", "rejected"),
                                                    ("request_changes", "changes_requested")])
def test_reject_and_request_changes_end_the_approval_at_once(decision, outcome):
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("any", ["bob", "ivan"]), ("all", ["carol"])))
            tasks = await open_tasks(rec, 2)
            cause = await refused(h, DecisionInput(tasks[0].task_id, "bob", decision))
            assert cause.type == "invalid" and cause.details[0]["path"] == "comment"
            await h.execute_update(RequisitionApproval.decide,
                                   DecisionInput(tasks[0].task_id, "bob", decision, "too pricey"))
            result = await h.result()
            assert result.outcome == outcome and result.decided_by == ["bob"]
            assert len(rec.of("open_task")) == 2  # level 2 never opened
            [closed] = rec.of("close_tasks")
            assert closed.task_ids == [tasks[1].task_id] and closed.status == "superseded"
            [fin] = rec.of("finish")
            assert fin.comment == "too pricey"
    run(scenario())


def test_any_mode_needs_one_approval_all_mode_needs_every_one():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob", "ivan"]),
                                                       ("any", ["carol", "quinn"])))
            bob, ivan = await open_tasks(rec, 2)
            await h.execute_update(RequisitionApproval.decide, DecisionInput(bob.task_id, "bob", "approve"))
            state = await h.query(RequisitionApproval.status)
            assert len(state["tasks"]) == 2  # level 2 waits for ivan
            await h.execute_update(RequisitionApproval.decide, DecisionInput(ivan.task_id, "ivan", "approve"))
            carol, quinn = (await open_tasks(rec, 4))[2:]
            await h.execute_update(RequisitionApproval.decide, DecisionInput(quinn.task_id, "quinn", "approve"))
            result = await h.result()
            assert result.decided_by == ["bob", "ivan", "quinn"]
            closes = rec.of("close_tasks")
            assert closes[0].task_ids == [carol.task_id] and closes[0].status == "superseded"
    run(scenario())


def test_validators_refuse_before_anything_is_recorded():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob"]), ("all", ["carol"])))
            [task] = await open_tasks(rec, 1)
            assert (await refused(h, DecisionInput(task.task_id, "mallory", "approve"))).type == "forbidden"
            assert (await refused(h, DecisionInput("no-such-task", "bob", "approve"))).type == "not_found"
            assert (await refused(h, DecisionInput(task.task_id, "bob", "reject", "  "))).type == "invalid"
            await h.execute_update(RequisitionApproval.decide, DecisionInput(task.task_id, "bob", "approve"))
            assert (await refused(h, DecisionInput(task.task_id, "bob", "approve"))).type == "conflict"
            await open_tasks(rec, 2)
            history = await h.fetch_history()
            accepted = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
            assert len(accepted) == 1  # only the one valid decision reached the history
            assert len(rec.of("record_decision")) == 1
    run(scenario())


def test_reassign_moves_the_task_and_restarts_its_clock():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob"])))
            [task] = await open_tasks(rec, 1)
            users = ["alice", "bob", "carol", "dana", "ivan", "quinn"]
            with pytest.raises(WorkflowUpdateFailedError) as err:
                await h.execute_update(RequisitionApproval.reassign, ReassignInput(
                    task.task_id, "ivan", "quinn", known_users=users))
            assert err.value.cause.type == "forbidden"
            with pytest.raises(WorkflowUpdateFailedError) as err:
                await h.execute_update(RequisitionApproval.reassign, ReassignInput(
                    task.task_id, "bob", "alice", known_users=users))
            assert err.value.cause.type == "invalid"  # the requester
            await env.sleep(timedelta(hours=40))
            await h.execute_update(RequisitionApproval.reassign, ReassignInput(
                task.task_id, "bob", "ivan", "on holiday", known_users=users))
            moved = (await open_tasks(rec, 2))[1]
            assert (moved.kind, moved.from_assignee, moved.assignee) == ("reassigned", "bob", "ivan")
            await env.sleep(timedelta(hours=20))  # 60 h after the start, 20 h after reassignment
            assert [c.kind for c in rec.of("open_task")] == ["assigned", "reassigned"]
            await h.execute_update(RequisitionApproval.decide, DecisionInput(task.task_id, "ivan", "approve"))
            assert (await h.result()).decided_by == ["ivan"]
    run(scenario())


def test_cancellation_closes_open_tasks_and_emits_no_decision():
    async def scenario() -> None:
        async with approval_env() as (env, rec, queue):
            h = await start(env, queue, approval_input(("all", ["bob", "ivan"])))
            tasks = await open_tasks(rec, 2)
            await h.execute_update(RequisitionApproval.decide, DecisionInput(tasks[0].task_id, "bob", "approve"))
            await h.signal(RequisitionApproval.cancel, CancelInput(by="alice", reason="not needed"))
            result = await h.result()
            assert result.outcome == "cancelled"
            [closed] = rec.of("close_tasks")
            assert closed.task_ids == [tasks[1].task_id] and closed.status == "cancelled"
            [fin] = rec.of("finish")
            assert fin.outcome == "cancelled" and fin.decided_by == ["alice"]
    run(scenario())
