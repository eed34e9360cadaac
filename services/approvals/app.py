"""App factory of the approvals service; `uvicorn services.approvals.app:create_app --factory`."""

from pathlib import Path

from fastapi import FastAPI
from temporalio.client import Client

from services.approvals.api import router
from shared.settings import Settings
from shared.service import ServiceRuntime, create_service_app

SERVICE = "approvals"


async def connect_temporal(runtime: ServiceRuntime) -> None:
    settings = runtime.settings
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    runtime.extras["temporal"] = client

    def temporal_reachable() -> None:
        import socket

        host, _, port = settings.temporal_address.rpartition(":")
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            pass

    runtime.readiness["temporal"] = temporal_reachable


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        SERVICE,
        settings=settings,
        migrations_dir=Path(__file__).parent / "migrations",
        routers=[router],
        subscriptions={},
        on_start=[connect_temporal],
    )
