"""App factory of the matching service; `uvicorn services.matching.app:create_app --factory`."""

from pathlib import Path

from fastapi import FastAPI

from services.matching.api import router
from services.matching.handlers import Matching, sweep_interval_from_env
from shared.consumer import Subscription
from shared.contracts.invoices import InvoiceReceived
from shared.contracts.requisitions import (
    GoodsReceiptRecorded,
    PurchaseOrderClosed,
    PurchaseOrderIssued,
)
from shared.service import ServiceRuntime, create_service_app
from shared.settings import Settings

SERVICE = "matching"


def create_app(settings: Settings | None = None, *, sweep_interval: float | None = None) -> FastAPI:
    """`sweep_interval`: seconds between deadline sweeps (default `P2P_MATCHING_SWEEP_SECONDS`
    or 5); tests shorten it to cross `po_wait` / `receipt_wait` deadlines quickly."""
    matching = Matching(sweep_interval=sweep_interval if sweep_interval is not None
                        else sweep_interval_from_env())

    def start(runtime: ServiceRuntime) -> None:
        runtime.extras["matching"] = matching
        matching.start(runtime)

    # One consumer for both topics: PO, receipt and invoice events are applied one at a time
    # in arrival order, so an invoice can never miss a PO that is being stored concurrently.
    documents = Subscription({
        PurchaseOrderIssued.ce_type: matching.on_po_issued,
        GoodsReceiptRecorded.ce_type: matching.on_receipt,
        PurchaseOrderClosed.ce_type: matching.on_po_closed,
        InvoiceReceived.ce_type: matching.on_invoice,
    })
    return create_service_app(
        SERVICE,
        settings=settings,
        migrations_dir=Path(__file__).parent / "migrations",
        routers=[router],
        subscriptions={"matching.documents": documents},
        on_start=[start],
        description="Two/three-way matching of invoices against POs and receipts, tolerances, "
                    "and the AP exceptions queue.",
    )
