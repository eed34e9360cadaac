"""App factory of the matching service; `uvicorn services.matching.app:create_app --factory`."""

import os
from pathlib import Path

from fastapi import FastAPI

from services.matching.api import router
from services.matching.handlers import Matching, sweep_interval_from_env
from shared.consumer import ConsumerRunner, Subscription
from shared.contracts.invoices import InvoiceReceived
from shared.contracts.requisitions import (
    GoodsReceiptRecorded,
    PurchaseOrderClosed,
    PurchaseOrderIssued,
)
from shared.service import ServiceRuntime, create_service_app
from shared.settings import Settings

SERVICE = "matching"
CONSUMER = "matching.documents"


def create_app(settings: Settings | None = None, *, sweep_interval: float | None = None,
               consumers: int | None = None) -> FastAPI:
    """`sweep_interval`: seconds between deadline sweeps (default `P2P_MATCHING_SWEEP_SECONDS`
    or 5); tests shorten it to cross `po_wait` / `receipt_wait` deadlines quickly.
    `consumers`: consumer threads in the service's group (default `P2P_MATCHING_CONSUMERS` or
    1). The consumer settles a poll's records in one transaction, so one thread no longer waits
    on PostgreSQL per event; several threads would hold the flow locks of many POs each for a
    whole batch and mostly wait on one another (measured: 41 invoices/s end to end with three,
    60 with one). Replicas scale out; the flow lock keeps any number of members consistent."""
    matching = Matching(sweep_interval=sweep_interval if sweep_interval is not None
                        else sweep_interval_from_env())
    members = consumers if consumers is not None else int(os.environ.get("P2P_MATCHING_CONSUMERS", "1"))

    def start(runtime: ServiceRuntime) -> None:
        runtime.extras["matching"] = matching
        matching.start(runtime)
        for n in range(2, max(members, 1) + 1):  # the platform starts the first one
            runner = ConsumerRunner(CONSUMER, documents, runtime.db.sessions, runtime.settings)
            runtime.consumers.append(runner)
            runtime.start_thread(f"{CONSUMER}-{n}", runner.run)

    # One subscription for both topics. Handlers touching one PO (its events, its invoices)
    # serialise on a flow lock, so an invoice can never miss a PO being stored concurrently,
    # whichever member of the group handles which partition.
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
        subscriptions={CONSUMER: documents},
        on_start=[start],
        description="Two/three-way matching of invoices against POs and receipts, tolerances, "
                    "and the AP exceptions queue.",
    )
