"""App factory of the requisitions service.

Run with `p2p serve requisitions` or `uvicorn services.requisitions.app:create_app --factory`.
"""

from pathlib import Path

from fastapi import FastAPI

from services.requisitions import domain, handlers
from services.requisitions.api import router
from shared.consumer import Subscription
from shared.contracts.approvals import ApprovalDecided
from shared.service import ServiceRuntime, create_service_app
from shared.settings import Settings

SERVICE = "requisitions"


def create_app(settings: Settings | None = None) -> FastAPI:
    bound: dict[str, ServiceRuntime] = {}

    def on_start(runtime: ServiceRuntime) -> None:
        try:
            pct = domain.percent_allowance(runtime.settings.over_receipt_pct)
        except ValueError as exc:
            raise RuntimeError(f"P2P_OVER_RECEIPT_PCT: {exc}") from exc
        runtime.extras["over_receipt_pct"] = pct
        bound["runtime"] = runtime

    def on_decided(session, event, envelope) -> None:
        handlers.on_approval_decided(bound["runtime"].outbox, session, event, envelope)

    return create_service_app(
        SERVICE,
        settings=settings,
        description="Suppliers, requisitions, purchase orders and goods receipts.",
        migrations_dir=Path(__file__).parent / "migrations",
        routers=[router],
        subscriptions={
            "requisitions.approvals": Subscription({ApprovalDecided.ce_type: on_decided}),
        },
        on_start=[on_start],
    )
