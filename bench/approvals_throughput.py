"""Approval throughput and inbox latency against real components.

Embedded PostgreSQL, Tansu and the Temporal dev server (or the ones named by
P2P_DATABASE_URL / P2P_KAFKA_BOOTSTRAP / P2P_TEMPORAL_ADDRESS); the approvals service runs
as its own process, `p2p serve approvals` (API, consumer, relay and Temporal worker), so the
load generator here does not share its interpreter.

    .venv/bin/python -m bench.approvals_throughput [--auto 2000] [--one 150] [--inbox 500]

- auto-approve path: N `requisition.submitted` (below the threshold) produced at once →
  N `approval.decided` read back from Kafka; workflows/s = N / (last decided − first produced).
  N is 2,000 by default: with a few hundred, the first second of a cold consumer (policy load,
  first fetch) dominates and the figure measures latency, not throughput (300 gave 84/s where
  2,000 give ~340/s on the same build).
- one-approver path: N submissions for one approver (no workflow yet) → tasks appear in the
  inbox → decisions over HTTP (8 client threads) → N `approval.decided` on Kafka.
- inbox: one approver with `--inbox` open tasks; latency of `GET /inbox` (first page of 50
  and a full page of 500), p50/p95 over 50 requests each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.common import infrastructure, save
from shared.auth import mint_token
from shared.contracts.approvals import ApprovalDecided
from shared.contracts.requisitions import RequisitionLine, RequisitionSubmitted
from shared.devstack import ManagedProcess, free_port, temporal_process, temporal_ready, wait_for
from shared.envelope import Envelope
from shared.kafka import bootstrap as bootstrap_servers
from shared.kafka import create_topics
from shared.settings import Settings


def _submission(req_id: str, amount: str, cc: str) -> RequisitionSubmitted:
    return RequisitionSubmitted(
        requisition_id=req_id, title="bench", requester="alice", cost_center=cc, currency="EUR",
        total=Decimal(amount),
        lines=[RequisitionLine(line_no=1, description="item", quantity=Decimal(1),
                               unit_price=Decimal(amount), amount=Decimal(amount),
                               supplier_id="SUP-1")],
        submitted_at=datetime.now(UTC))


def _produce_all(settings: Settings, events: list[RequisitionSubmitted]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(settings), acks="all", linger_ms=5)
    for ev in events:
        env = Envelope(type=ev.ce_type, source="/p2p/bench", subject=ev.key(),
                       data=ev.model_dump(mode="json"), correlation_id=ev.requisition_id)
        key, headers, value = env.to_kafka()
        producer.send(settings.topic(ev.topic), key=key, value=value, headers=headers)
    producer.flush(30)
    producer.close()


class DecidedWatcher:
    """Reads `p2p.approvals` from the start in a thread; records when each decision arrives."""

    def __init__(self, settings: Settings) -> None:
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        topic = settings.topic("p2p.approvals")
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(settings),
                                      enable_auto_commit=False)
        parts = self.consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                for r in records:
                    env = Envelope.from_kafka(r.key, r.headers, r.value)
                    if env.type == ApprovalDecided.ce_type:
                        self.seen.setdefault(env.subject, time.perf_counter())
        self.consumer.close()

    def wait(self, ids: set[str], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not ids <= self.seen.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids - self.seen.keys())} decisions missing")
            time.sleep(0.01)
        return max(self.seen[i] for i in ids)


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def run(auto_n: int, one_n: int, inbox_n: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="p2p-bench-approvals-"))
    temporal = None
    with infrastructure() as (db_url, bootstrap):
        address = os.environ.get("P2P_TEMPORAL_ADDRESS")
        if not address:
            port = free_port()
            temporal = temporal_process(port, None, workdir / "temporal.db",
                                        workdir / "temporal.log").start()
            address = f"127.0.0.1:{port}"
            wait_for(lambda: temporal_ready(address), 60, "Temporal", interval=0.3)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = Settings(database_url=db_url, kafka_bootstrap=bootstrap, topic_prefix=prefix,
                            temporal_address=address, temporal_task_queue=f"{prefix}approvals",
                            relay_idle_seconds=0.02, log_level="WARNING")
        create_topics(settings)
        http_port = free_port()
        env = {**os.environ, "P2P_DATABASE_URL": db_url, "P2P_KAFKA_BOOTSTRAP": bootstrap,
               "P2P_TOPIC_PREFIX": prefix, "P2P_TEMPORAL_ADDRESS": address,
               "P2P_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
               "P2P_RELAY_IDLE_SECONDS": "0.02", "P2P_LOG_LEVEL": "WARNING"}
        service = ManagedProcess("approvals", [sys.executable, "-m", "shared.cli.main", "serve",
                                               "approvals", "--port", str(http_port)],
                                 env=env, log_path=workdir / "approvals.log").start()
        base = f"http://127.0.0.1:{http_port}"
        try:
            wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 90, "approvals")
            watcher = DecidedWatcher(settings)
            result = {"auto_approve": _auto(settings, watcher, auto_n),
                      "one_approver": _one(settings, watcher, base, one_n),
                      "inbox": _inbox(settings, base, inbox_n)}
            watcher.stop.set()
        finally:
            service.stop()
            if temporal:
                temporal.stop()
    return {"settings": {"auto": auto_n, "one": one_n, "inbox_tasks": inbox_n}, **result}


def _auto(settings: Settings, watcher: DecidedWatcher, n: int) -> dict:
    events = [_submission(f"A-{uuid.uuid4().hex[:10]}", "100.00", "CC-100") for _ in range(n)]
    t0 = time.perf_counter()
    _produce_all(settings, events)
    last = watcher.wait({e.requisition_id for e in events}, 300)
    lat = [watcher.seen[e.requisition_id] - t0 for e in events]
    return {"requisitions": n, "workflows_per_s": round(n / (last - t0), 1),
            "seconds": round(last - t0, 2), "p50_s": round(_pct(lat, 0.5), 3),
            "p95_s": round(_pct(lat, 0.95), 3)}


def _open_task_ids(client: httpx.Client, user: str, want: set[str]) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {mint_token(user, ['approver'])}"}
    found: dict[str, str] = {}
    cursor = None
    while True:
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = client.get("/inbox", params=params, headers=headers).json()
        for item in page["items"]:
            if item["requisition_id"] in want:
                found[item["requisition_id"]] = item["task_id"]
        cursor = page["next_cursor"]
        if not cursor:
            return found


def _one(settings: Settings, watcher: DecidedWatcher, base: str, n: int) -> dict:
    # CC-200 is owned by gina (limit 5 000): 1 000 EUR needs her and nobody else.
    events = [_submission(f"O-{uuid.uuid4().hex[:10]}", "1000.00", "CC-200") for _ in range(n)]
    ids = {e.requisition_id for e in events}
    headers = {"Authorization": f"Bearer {mint_token('gina', ['approver'])}"}
    decided: set[str] = set()
    t0 = time.perf_counter()
    _produce_all(settings, events)
    with httpx.Client(base_url=base, timeout=60) as client, ThreadPoolExecutor(8) as pool:
        while decided != ids:
            tasks = {r: t for r, t in _open_task_ids(client, "gina", ids - decided).items()}
            if not tasks:
                time.sleep(0.02)
                continue

            def decide(task_id: str) -> int:
                return client.post(f"/tasks/{task_id}/decision", json={"decision": "approve"},
                                   headers=headers).status_code

            codes = list(pool.map(decide, tasks.values()))
            bad = [c for c in codes if c != 200]
            if bad:
                raise RuntimeError(f"decisions failed: {bad[:5]}")
            decided |= set(tasks)
    last = watcher.wait(ids, 300)
    lat = [watcher.seen[i] - t0 for i in ids]
    return {"requisitions": n, "workflows_per_s": round(n / (last - t0), 1),
            "seconds": round(last - t0, 2), "p50_s": round(_pct(lat, 0.5), 3),
            "p95_s": round(_pct(lat, 0.95), 3)}


def _inbox(settings: Settings, base: str, n: int) -> dict:
    # CC-300 is owned by hugo: he gets n open tasks.
    events = [_submission(f"I-{uuid.uuid4().hex[:10]}", "1000.00", "CC-300") for _ in range(n)]
    _produce_all(settings, events)
    ids = {e.requisition_id for e in events}
    headers = {"Authorization": f"Bearer {mint_token('hugo', ['approver'])}"}
    with httpx.Client(base_url=base, timeout=60) as client:
        deadline = time.monotonic() + 300
        while len(_open_task_ids(client, "hugo", ids)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("the inbox did not fill up")
            time.sleep(0.2)
        out = {"open_tasks": n}
        for limit in (50, 500):
            times = []
            for _ in range(50):
                t = time.perf_counter()
                r = client.get("/inbox", params={"limit": limit}, headers=headers)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200 and len(r.json()["items"]) == min(limit, n)
            out[f"limit_{limit}"] = {"p50_ms": round(statistics.median(times) * 1000, 1),
                                     "p95_ms": round(_pct(times, 0.95) * 1000, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auto", type=int, default=2000)
    parser.add_argument("--one", type=int, default=150)
    parser.add_argument("--inbox", type=int, default=500)
    args = parser.parse_args()
    result = run(args.auto, args.one, args.inbox)
    path = save("approvals", result)
    import json

    print(json.dumps(result, indent=2))
    print(f"saved to {path}")


if __name__ == "__main__":
    main()
