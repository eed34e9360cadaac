"""The matching service end to end on real PostgreSQL + Kafka: invoices decided per second.

    .venv/bin/python -m bench.matching_consumer [--invoices 500] [--members 1 3]

POs and receipts are loaded first; then `--invoices` two-line invoices (each matching its own
PO) are put on the broker at once, and the clock runs until every one has its decision in
the database (consume → match → decision + events in the outbox, committed). Run once per
`--members` value (consumer threads in the service's group).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from kafka import KafkaProducer
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import infrastructure, save
from services.matching.app import create_app
from shared.contracts.invoices import InvoiceReceived
from shared.contracts.requisitions import GoodsReceiptRecorded, PurchaseOrderIssued
from shared.db import service_database, sqlalchemy_url
from shared.envelope import Envelope
from shared.kafka import bootstrap, create_topics
from shared.settings import Settings


def _events(n: int):
    now = datetime.now(UTC)
    setup, invoices = [], []
    for i in range(n):
        number = f"PO-{i:06d}"
        setup.append(PurchaseOrderIssued(
            po_id=f"id-{number}", po_number=number, requisition_id=f"REQ-{i}", requester="alice",
            cost_center="CC-100", supplier_id="SUP-1",
            supplier_identifiers={"id": "SUP-1", "vat_id": "DE123456789"}, currency="EUR",
            lines=[{"line_no": 1, "description": "Laptop", "quantity": "10", "unit_price": "100.00"},
                   {"line_no": 2, "description": "Consulting", "quantity": "5",
                    "unit_price": "800.00", "receipt_required": False}]))
        setup.append(GoodsReceiptRecorded(receipt_id=f"R-{i}", po_id=f"id-{number}", po_number=number,
                                          lines=[{"line_no": 1, "quantity": "10"}], received_at=now))
        invoices.append(InvoiceReceived(
            invoice_id=str(uuid.uuid4()), source_format="json", type="invoice",
            invoice_number=f"INV-{i}", issue_date=now.date(), currency="EUR",
            supplier={"vat_id": "DE123456789"}, order_reference=number,
            lines=[{"line_no": "1", "description": "Laptop", "quantity": "10", "unit_price": "100.00",
                    "net_amount": "1000.00", "po_line_no": "1"},
                   {"line_no": "2", "description": "Consulting", "quantity": "5",
                    "unit_price": "800.00", "net_amount": "4000.00", "po_line_no": "2"}],
            totals={"net": "5000.00", "tax": "950.00", "gross": "5950.00", "payable": "5950.00"},
            received_at=now))
    return setup, invoices


def _count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def run_once(db_url: str, kafka: str, n: int, members: int) -> dict:
    settings = Settings(database_url=db_url, kafka_bootstrap=kafka,
                        topic_prefix=f"bench{uuid.uuid4().hex[:6]}.", relay_idle_seconds=0.05)
    create_topics(settings)
    setup, invoices = _events(n)
    producer = KafkaProducer(bootstrap_servers=bootstrap(settings), acks="all", linger_ms=5)

    def send(event) -> None:
        env = Envelope(type=event.ce_type, source="/bench", subject=event.key(),
                       data=event.model_dump(mode="json"))
        key, headers, value = env.to_kafka()
        producer.send(settings.topic(event.topic), key=key, value=value, headers=headers)

    app = create_app(settings, consumers=members)
    engine = create_engine(sqlalchemy_url(db_url, service_database("matching", settings.topic_prefix)))
    with TestClient(app):
        for runner in app.state.runtime.consumers:
            runner.ready.wait(60)
        for event in setup:
            send(event)
        producer.flush()
        deadline = time.monotonic() + 300
        while _count(engine, "SELECT count(*) FROM receipts") < n and time.monotonic() < deadline:
            time.sleep(0.1)
        t0 = time.perf_counter()
        for event in invoices:
            send(event)
        producer.flush()
        while _count(engine, "SELECT count(*) FROM match_decisions") < n and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        cleared = _count(engine, "SELECT count(*) FROM invoices WHERE state = 'cleared'")
    engine.dispose()
    producer.close()
    return {"members": members, "invoices": n, "seconds": round(elapsed, 3),
            "invoices_per_s": round(n / elapsed, 1), "cleared": cleared}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invoices", type=int, default=500)
    ap.add_argument("--members", type=int, nargs="+", default=[1, 3])
    args = ap.parse_args()
    runs = []
    with infrastructure() as (db_url, kafka):
        for members in args.members:
            result = run_once(db_url, kafka, args.invoices, members)
            runs.append(result)
            print(f"members={members}: {result['invoices_per_s']} invoices/s "
                  f"({result['invoices']} in {result['seconds']}s, {result['cleared']} cleared)")
    print(f"written to {save('matching_consumer', {'runs': runs})}")


if __name__ == "__main__":
    main()
