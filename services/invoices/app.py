"""App factory of the invoices service; `uvicorn services.invoices.app:create_app --factory`."""

from pathlib import Path

from fastapi import FastAPI

from services.invoices.api import install_openapi, router
from services.invoices.handlers import (
    MATCHING_HANDLERS,
    on_outbox_published,
    on_purchase_order_issued,
)
from shared.consumer import Subscription
from shared.contracts.requisitions import PurchaseOrderIssued
from shared.service import create_service_app
from shared.settings import Settings

SERVICE = "invoices"

DESCRIPTION = """Invoice intake: native JSON, PEPPOL BIS 3.0 UBL, CII, Factur-X PDF and CSV
batches are validated (EN 16931 rules), de-duplicated, normalised, stored with their original
bytes and announced as `invoice.received`; matching's events drive the invoice status."""


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_service_app(
        SERVICE,
        settings=settings,
        migrations_dir=Path(__file__).parent / "migrations",
        routers=[router],
        subscriptions={
            "invoices.matching": Subscription(MATCHING_HANDLERS),
            "invoices.purchase-orders": Subscription(
                {PurchaseOrderIssued.ce_type: on_purchase_order_issued}),
        },
        description=DESCRIPTION,
        # Once the broker has our invoice.received, matching has the invoice: status `matching`.
        on_published=on_outbox_published,
    )
    install_openapi(app)
    return app
