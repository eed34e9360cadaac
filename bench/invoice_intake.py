"""Invoice intake throughput for PEPPOL UBL documents: documents/s.

Three measurements on real embedded PostgreSQL + Tansu (or P2P_DATABASE_URL / P2P_KAFKA_BOOTSTRAP):

* `parse+validate`: the XML → normalised invoice → EN 16931 checks, in-process, no I/O;
* `intake`: parse + validate + supplier resolution + duplicate checks + store (invoice, keys,
  original, status) + outbox row, one transaction per document, with `--workers` threads;
* `http`: the same through the whole service (`POST /invoices`, auth, middleware) in-process,
  then how long the outbox relay needs until every `invoice.received` is on Kafka.

Documents are the PEPPOL BIS 3.0 examples from ../shared/data/peppol with unique invoice
numbers and issue dates spread over a year.

    .venv/bin/python -m bench.invoice_intake [--docs 2000] [--workers 4]
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from lxml import etree
from sqlalchemy import func, select, text

from bench.common import infrastructure, save
from services.invoices.app import create_app
from services.invoices.handlers import receive_invoice
from services.invoices.parsers import parse_document
from services.invoices.validation import validate
from shared.auth import mint_token
from shared.db import Database, ensure_database, migrate, service_database, sqlalchemy_url
from shared.kafka import create_topics
from shared.messaging import outbox
from shared.outbox import Outbox
from shared.settings import Settings

PEPPOL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "peppol"
TEMPLATES = ("base-example.xml", "Allowance-example.xml", "base-creditnote-correction.xml",
             "vat-category-E.xml", "vat-category-O.xml")
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "invoices" / "migrations"


def documents(count: int, tag: str) -> list[bytes]:
    roots = [etree.fromstring((PEPPOL_DIR / name).read_bytes()) for name in TEMPLATES]
    docs = []
    for n in range(count):
        root = roots[n % len(roots)]
        root.find(f"{{{CBC}}}ID").text = f"{tag}-{n:07d}"
        root.find(f"{{{CBC}}}IssueDate").text = (date(2026, 1, 1) + timedelta(days=n % 365)
                                                 ).isoformat()
        docs.append(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return docs


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds else float("inf")


def bench_parse(docs: list[bytes]) -> dict:
    t0 = time.perf_counter()
    for d in docs:
        issues = validate(parse_document(d, "application/xml"))
        assert not issues, issues
    elapsed = time.perf_counter() - t0
    return {"documents": len(docs), "seconds": round(elapsed, 3), "docs_per_s": rate(len(docs), elapsed)}


def bench_intake(db_url: str, docs: list[bytes], workers: int) -> dict:
    name = service_database("invoices", f"bench_intake_{workers}_{int(time.time())}_")
    ensure_database(db_url, name)
    url = sqlalchemy_url(db_url, name)
    migrate(url, MIGRATIONS)
    db = Database(url, pool_size=workers + 2)
    ob = Outbox("invoices")

    def one(doc: bytes) -> None:
        inv = parse_document(doc, "application/xml")
        with db.session() as session, session.begin():
            receive_invoice(session, ob, inv, content_type="application/xml", original=doc)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, docs))
    elapsed = time.perf_counter() - t0
    with db.session() as s:
        stored = s.execute(text("SELECT count(*) FROM invoices")).scalar_one()
        rows = s.execute(select(func.count()).select_from(outbox)).scalar_one()
    db.dispose()
    assert stored == rows == len(docs), (stored, rows)
    return {"documents": len(docs), "workers": workers, "seconds": round(elapsed, 3),
            "docs_per_s": rate(len(docs), elapsed)}


def bench_http(db_url: str, bootstrap: str, docs: list[bytes], workers: int) -> dict:
    from fastapi.testclient import TestClient

    settings = Settings(database_url=db_url, kafka_bootstrap=bootstrap, topic_prefix=f"bench_http_{int(time.time())}.",
                        relay_idle_seconds=0.05, db_pool_size=workers + 2, log_level="WARNING")
    create_topics(settings)
    headers = {"Authorization": f"Bearer {mint_token('bench', ['integration'])}",
               "Content-Type": "application/xml"}
    app = create_app(settings)
    with TestClient(app) as client:
        runtime = app.state.runtime
        statuses: list[int] = []
        lock = threading.Lock()

        def one(doc: bytes) -> None:
            status = client.post("/invoices", content=doc, headers=headers).status_code
            with lock:
                statuses.append(status)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, docs))
        accepted = time.perf_counter() - t0
        while True:
            with runtime.db.session() as s:
                left = s.execute(select(func.count()).select_from(outbox)
                                 .where(outbox.c.published_at.is_(None))).scalar_one()
            if left == 0:
                break
            time.sleep(0.05)
        published = time.perf_counter() - t0
    assert statuses.count(201) == len(docs), {s: statuses.count(s) for s in set(statuses)}
    return {"documents": len(docs), "workers": workers,
            "accepted_seconds": round(accepted, 3), "docs_per_s": rate(len(docs), accepted),
            "all_published_seconds": round(published, 3),
            "published_per_s": rate(len(docs), published)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    result = {"parse+validate": bench_parse(documents(args.docs, "PV"))}
    print("parse+validate", result["parse+validate"], flush=True)
    with infrastructure() as (db_url, bootstrap):
        result["intake_1_worker"] = bench_intake(db_url, documents(args.docs, "I1"), 1)
        print("intake (1 worker)", result["intake_1_worker"], flush=True)
        result[f"intake_{args.workers}_workers"] = bench_intake(db_url, documents(args.docs, "IN"),
                                                                args.workers)
        print(f"intake ({args.workers} workers)", result[f"intake_{args.workers}_workers"],
              flush=True)
        result["http"] = bench_http(db_url, bootstrap, documents(args.docs, "H"), args.workers)
        print("http", result["http"], flush=True)
    print("saved to", save("invoice_intake", result))


if __name__ == "__main__":
    main()
