"""The Temporal worker of the approvals service, run inside the service process.

Started by an async start hook as a task on uvicorn's event loop, shut down by the stop hook;
activities are sync (SQLAlchemy) and run on a small thread pool.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from services.approvals.activities import ApprovalActivities
from services.approvals.workflows import RequisitionApproval
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)

ACTIVITY_THREADS = 8


def build_worker(client: Client, task_queue: str, activities: ApprovalActivities,
                 executor: ThreadPoolExecutor) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[RequisitionApproval],
                  activities=activities.all(), activity_executor=executor,
                  max_concurrent_activities=ACTIVITY_THREADS)


async def start_worker(runtime: ServiceRuntime) -> None:
    executor = ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="approvals-activity")
    activities = ApprovalActivities(runtime.db, runtime.outbox)
    await asyncio.to_thread(activities.refresh_open_tasks_gauge)
    worker = build_worker(runtime.extras["temporal"], runtime.settings.temporal_task_queue,
                          activities, executor)
    task = asyncio.create_task(worker.run(), name="temporal-worker")
    runtime.extras.update(worker=worker, worker_task=task, activity_executor=executor)

    def worker_running() -> None:
        if task.done():
            raise RuntimeError("the Temporal worker has stopped")

    runtime.readiness["temporal_worker"] = worker_running


async def stop_worker(runtime: ServiceRuntime) -> None:
    worker: Worker | None = runtime.extras.get("worker")
    task: asyncio.Task | None = runtime.extras.get("worker_task")
    if worker is None or task is None:
        return
    if not task.done():
        await worker.shutdown()
    try:
        await task
    except Exception:
        log.exception("the Temporal worker ended with an error")
    runtime.extras["activity_executor"].shutdown(wait=False)
