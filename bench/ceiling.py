"""The raw ceiling of this machine for the platform's I/O pattern, with no business logic.

A k-stage pipeline of separate processes: stage 1 commits one PostgreSQL transaction per item
and produces it to Kafka (acks=all, idempotent); every later stage consumes, commits one
transaction per item, and produces to the next topic; the last stage only commits. That is the
same number of transactions and Kafka round trips an invoice (3 stages: intake, matching, status)
or an auto-approved requisition (3 stages: submit, approve, order) costs in the real system.

    .venv/bin/python -m bench.ceiling [--items 5000] [--stages 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import uuid

import psycopg
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.common import infrastructure, save


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _stage(index: int, stages: int, items: int, db_url: str, bootstrap: str, run: str,
           ready, done: mp.Queue) -> None:  # noqa: PLR0913
    with psycopg.connect(_conninfo(db_url), autocommit=False) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS ceiling_{index} (id text primary key, body text)")
        conn.commit()
        producer = None
        if index < stages - 1:
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                     enable_idempotence=True, linger_ms=2)
        if index == 0:
            ready.wait()  # every consumer stage has its partitions
            start = time.perf_counter()
            for n in range(items):
                key = f"{run}-{n}"
                conn.execute(f"INSERT INTO ceiling_{index} VALUES (%s, %s)", (key, "x" * 200))
                conn.commit()
                producer.send(f"ceiling.{run}.{index}", key=key.encode(), value=b"x" * 800)
            producer.flush()
            done.put(("first", start))
            return
        consumer = KafkaConsumer(f"ceiling.{run}.{index - 1}", bootstrap_servers=bootstrap,
                                 group_id=f"ceiling-{run}-{index}", enable_auto_commit=False,
                                 auto_offset_reset="earliest", session_timeout_ms=6000,
                                 heartbeat_interval_ms=1000)
        while not consumer.assignment():
            consumer.poll(timeout_ms=100)
        ready.wait()
        seen = 0
        while seen < items:
            for records in consumer.poll(timeout_ms=200, max_records=500).values():
                for r in records:
                    conn.execute(f"INSERT INTO ceiling_{index} VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                 (r.key.decode(), "x" * 200))
                    conn.commit()
                    if producer:
                        producer.send(f"ceiling.{run}.{index}", key=r.key, value=r.value)
                    seen += 1
                consumer.commit()
        if producer:
            producer.flush()
        done.put(("last", time.perf_counter()) if index == stages - 1 else ("mid", 0.0))
        consumer.close()


def pipeline(items: int, stages: int, db_url: str, bootstrap: str) -> float:
    run = uuid.uuid4().hex[:8]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(f"ceiling.{run}.{i}", 6, 1) for i in range(stages - 1)])
    admin.close()
    ctx = mp.get_context("spawn")
    ready, done = ctx.Barrier(stages), ctx.Queue()
    procs = [ctx.Process(target=_stage, args=(i, stages, items, db_url, bootstrap, run, ready, done))
             for i in range(stages)]
    for p in procs:
        p.start()
    marks = dict(done.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(30)
    return items / (marks["last"] - marks["first"])


def pg_transactions_per_s(db_url: str, n: int = 3000) -> float:
    with psycopg.connect(_conninfo(db_url)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ceiling_tx (id serial primary key, body text)")
        conn.commit()
        start = time.perf_counter()
        for _ in range(n):
            conn.execute("INSERT INTO ceiling_tx (body) VALUES (%s)", ("x" * 200,))
            conn.commit()
        return n / (time.perf_counter() - start)


INTAKE_TABLES = """
CREATE TABLE IF NOT EXISTS ceiling_invoices (id text primary key, supplier text, number text,
    gross numeric, issue_date date, document jsonb);
CREATE INDEX IF NOT EXISTS ceiling_invoices_lookup ON ceiling_invoices (supplier, gross);
CREATE TABLE IF NOT EXISTS ceiling_keys (key text, number text, invoice_id text,
    primary key (key, number));
CREATE TABLE IF NOT EXISTS ceiling_originals (invoice_id text primary key, body bytea);
CREATE TABLE IF NOT EXISTS ceiling_history (id bigserial primary key, invoice_id text, status text);
CREATE TABLE IF NOT EXISTS ceiling_outbox (id bigserial primary key, event_id text, payload text);
"""


def intake_shaped_per_s(db_url: str, n: int = 2000, threads: int = 4) -> float:
    """Intake's database work with no Python around it: per document one transaction of a
    look-up, a savepoint, four inserts (invoice with its JSON, keys, original, history) and an
    outbox insert, from `threads` connections (the service serves intake from a thread pool)."""
    import json
    import threading

    with psycopg.connect(_conninfo(db_url)) as conn:
        conn.execute(INTAKE_TABLES)
        conn.commit()
    run = uuid.uuid4().hex[:8]
    document = json.dumps({"lines": [{"line_no": "1", "description": "x" * 40}] * 3, "n": "x" * 400})
    body = b"<Invoice>" + b"x" * 3000 + b"</Invoice>"

    def worker(k: int) -> None:
        with psycopg.connect(_conninfo(db_url)) as conn:
            for i in range(k, n, threads):
                key = f"{run}-{i}"
                with conn.transaction():
                    conn.execute("SELECT id FROM ceiling_invoices WHERE supplier = %s AND gross = %s "
                                 "LIMIT 50", ("SUP", i))
                    with conn.transaction():  # the savepoint around the duplicate-key insert
                        conn.execute("INSERT INTO ceiling_invoices VALUES (%s, 'SUP', %s, %s, "
                                     "current_date, %s)", (key, key, i, document))
                        conn.execute("INSERT INTO ceiling_keys VALUES (%s, %s, %s) ON CONFLICT DO "
                                     "NOTHING RETURNING key", ("SUP", key, key))
                        conn.execute("INSERT INTO ceiling_originals VALUES (%s, %s)", (key, body))
                        conn.execute("INSERT INTO ceiling_history (invoice_id, status) VALUES (%s, "
                                     "'received')", (key,))
                    conn.execute("INSERT INTO ceiling_outbox (event_id, payload) VALUES (%s, %s)",
                                 (key, document))

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return n / (time.perf_counter() - start)


def run(items: int = 5000, stages: int = 3) -> dict:
    with infrastructure() as (db_url, bootstrap):
        return {
            "pg_transactions_per_s_one_connection": round(pg_transactions_per_s(db_url)),
            "intake_shaped_transactions_per_s": round(intake_shaped_per_s(db_url)),
            f"pipeline_{stages}_stages_items_per_s": round(pipeline(items, stages, db_url, bootstrap), 1),
            "items": items,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--stages", type=int, default=3)
    args = parser.parse_args()
    result = run(args.items, args.stages)
    print(result, "->", save("ceiling", result))


if __name__ == "__main__":
    main()
