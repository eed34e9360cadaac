"""App factory of the approvals service; `uvicorn services.approvals.app:create_app --factory`."""

from __future__ import annotations

import socket
from pathlib import Path

from fastapi import FastAPI
from temporalio.client import Client

from services.approvals.api import router
from services.approvals.handlers import ApprovalService
from services.approvals.worker import start_worker, stop_worker
from shared.consumer import Subscription
from shared.contracts.requisitions import RequisitionCancelled, RequisitionSubmitted
from shared.service import ServiceRuntime, create_service_app
from shared.settings import Settings

SERVICE = "approvals"


async def connect_temporal(runtime: ServiceRuntime) -> None:
    settings = runtime.settings
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    runtime.extras["temporal"] = client

    def temporal_reachable() -> None:
        host, _, port = settings.temporal_address.rpartition(":")
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            pass

    runtime.readiness["temporal"] = temporal_reachable


def create_app(settings: Settings | None = None) -> FastAPI:
    service = ApprovalService()
    return create_service_app(
        SERVICE,
        settings=settings,
        migrations_dir=Path(__file__).parent / "migrations",
        routers=[router],
        subscriptions={
            # Batched like every consumer: the Temporal calls in these handlers are idempotent
            # (a deterministic workflow id started with REJECT_DUPLICATE; the workflow ignores
            # a second cancel signal), so a batch that rolls back after starting a workflow and
            # is settled again one by one has the same effects.
            "approvals.requisitions": Subscription({
                RequisitionSubmitted.ce_type: service.on_submitted,
                RequisitionCancelled.ce_type: service.on_cancelled,
            }),
        },
        on_start=[connect_temporal, service.bind, service.seed_policy, start_worker],
        on_stop=[stop_worker],
        description="Approval policy and org directory, Temporal approval workflows, inbox, "
                    "delegation and SLA escalation.",
    )
