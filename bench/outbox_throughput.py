"""Outbox relay throughput: events/s from committed outbox rows to acknowledged Kafka records.

    .venv/bin/python -m bench.outbox_throughput [--events 20000]
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from bench.common import infrastructure, save
from shared.contracts.requisitions import RequisitionCancelled
from shared.db import Database, ensure_database, sqlalchemy_url
from shared.kafka import create_topics
from shared.messaging import metadata, outbox
from shared.outbox import Outbox, OutboxRelay
from shared.settings import Settings


def run(events: int) -> dict:
    with infrastructure() as (db_url, bootstrap):
        settings = Settings(database_url=db_url, kafka_bootstrap=bootstrap, topic_prefix="bench.",
                            relay_idle_seconds=0.01)
        create_topics(settings)
        ensure_database(db_url, "p2p_bench_outbox")
        db = Database(sqlalchemy_url(db_url, "p2p_bench_outbox"), pool_size=4)
        metadata.create_all(db.engine)
        ob = Outbox("bench")
        now = datetime.now(UTC)
        # Rows are written up front (in batches of 1000) so the relay alone is measured.
        t0 = time.perf_counter()
        for start in range(0, events, 1000):
            with db.session() as s, s.begin():
                for n in range(start, min(start + 1000, events)):
                    ob.add(s, RequisitionCancelled(requisition_id=f"REQ-{n % 500}",
                                                   cancelled_by="bench", cancelled_at=now))
        write_s = time.perf_counter() - t0
        relay = OutboxRelay(ob, db.sessions, settings)
        stop = threading.Event()
        t0 = time.perf_counter()
        thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        thread.start()
        while True:
            with db.session() as s:
                left = s.execute(select(func.count()).select_from(outbox)
                                 .where(outbox.c.published_at.is_(None))).scalar_one()
            if left == 0:
                break
            time.sleep(0.02)
        relay_s = time.perf_counter() - t0
        stop.set()
        thread.join(10)
        db.dispose()
    return {"events": events, "write_events_per_s": round(events / write_s),
            "relay_events_per_s": round(events / relay_s), "relay_seconds": round(relay_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    result = run(parser.parse_args().events)
    path = save("outbox", result)
    print(result, "->", path)


if __name__ == "__main__":
    main()
