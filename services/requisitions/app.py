"""App factory of the requisitions service; `uvicorn services.requisitions.app:create_app --factory`."""

from pathlib import Path

from fastapi import FastAPI

from services.requisitions.api import router
from shared.settings import Settings
from shared.service import create_service_app

SERVICE = "requisitions"


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        SERVICE,
        settings=settings,
        migrations_dir=Path(__file__).parent / "migrations",
        routers=[router],
        subscriptions={},
    )
