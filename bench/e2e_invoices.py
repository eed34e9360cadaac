"""End-to-end invoices/s: first POST /invoices to last `invoice.cleared_for_payment` event.

Starts its own stack (`p2p up` on free ports, fresh state), seeds a supplier and auto-approved
purchase orders with full receipts, then
  1. offers a fixed load (default 100 invoices/s) and reports latency POST → decision event
     (p50/p95/p99), and
  2. saturates intake (wrk when installed, else an asyncio client) and reports invoices/s
     cleared end to end.
Every invoice is a clean match (touchless), so each one crosses intake, the outbox, Kafka,
matching, the outbox again and the invoices status projection.

    .venv/bin/python -m bench.e2e_invoices [--rate 100] [--seconds 15] [--saturation 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import httpx
import yaml
from kafka import KafkaConsumer, TopicPartition

from bench.common import save
from shared.auth import mint_token
from shared.devstack import REPO_ROOT, start_up
from shared.envelope import Envelope

CLEARED = "p2p.invoice.cleared_for_payment.v1"
FINAL_OTHER = {"p2p.invoice.exception_raised.v1", "p2p.invoice.awaiting_receipt.v1"}
POS = 8
LINES_PER_PO = 5

# wrk's Lua: each thread numbers its own requests; amounts start above the Python client's so
# no invoice looks like a suspected duplicate of another (same supplier, amount and window).
WRK_SCRIPT = """
local pos = {%(pos)s}
counter = 0
tid = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
request = function()
  counter = counter + 1
  local n = 1000000 + counter * 16 + tid
  local net = string.format("%%d.00", n * 10)
  local body = string.format(
    '{"type":"invoice","invoice_number":"W%(run)s-%%d-%%d","issue_date":"%(today)s",' ..
    '"currency":"EUR","supplier":{"id":"SUP-BENCH"},"order_reference":"%%s",' ..
    '"lines":[{"line_no":"1","description":"bench item","quantity":"%%d",' ..
    '"unit_price":"10.00","net_amount":"%%s","po_line_no":"%%d","tax_rate":"0"}],' ..
    '"totals":{"net":"%%s","tax":"0.00","gross":"%%s","payable":"%%s"}}',
    tid, counter, pos[(n %% #pos) + 1], n, net, 1 + n %% %(lines)d, net, net, net)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["Authorization"] = "%(token)s"}, body)
end
"""


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class DecisionListener:
    """Records when each invoice's decision event reaches the broker's consumers."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        parts = self.consumer.partitions_for_topic("p2p.matching") or set()
        self.tps = [TopicPartition("p2p.matching", p) for p in parts]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_end(*self.tps)
        for tp in self.tps:
            self.consumer.position(tp)
        self.cleared: dict[str, float] = {}
        self.other: dict[str, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                now = time.perf_counter()
                for r in records:
                    env = Envelope.from_kafka(r.key, r.headers, r.value)
                    if env.type == CLEARED:
                        self.cleared.setdefault(env.subject, now)
                    elif env.type in FINAL_OTHER:
                        self.other.setdefault(env.subject, env.type)

    def wait_for_count(self, since: float, count: int, timeout: float) -> list[float]:
        """Clearance times after `since` once `count` of them arrived (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            done = [t for t in list(self.cleared.values()) if t >= since]
            if len(done) >= count or time.monotonic() > deadline:
                return done
            time.sleep(0.05)

    def wait_for_quiet(self, since: float, quiet: float, timeout: float) -> list[float]:
        """Clearance times after `since`, once none has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            done = [t for t in list(self.cleared.values()) if t >= since]
            if time.perf_counter() - max(done, default=since) >= quiet or time.monotonic() > deadline:
                return done
            time.sleep(0.05)

    def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i in self.cleared or i in self.other for i in ids):
                return
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.consumer.close()


class Bench:
    def __init__(self, up) -> None:  # noqa: ANN001
        self.up = up
        self.admin = {"Authorization": f"Bearer {mint_token('bench-admin', ['admin'])}"}
        self.requester = {"Authorization": f"Bearer {mint_token('alice', ['requester', 'receiver'])}"}
        self.integration = {"Authorization": f"Bearer {mint_token('bench-intake', ['integration'])}"}
        self.run_id = uuid.uuid4().hex[:6].upper()
        self.pos: list[str] = []
        self.counter = 0

    def seed(self, cost_center: str) -> None:
        with httpx.Client(timeout=30) as c:
            r = c.post(f"{self.up.url('requisitions')}/suppliers", headers=self.admin,
                       json={"id": "SUP-BENCH", "name": "Bench Supplies", "vat_id": "DE999999999",
                             "currency": "EUR"})
            assert r.status_code in (201, 409), r.text
            req_ids = []
            for n in range(POS):
                lines = [{"description": f"bench item {n}-{k}", "quantity": "1000000000",
                          "unit_price": "10.00", "supplier_id": "SUP-BENCH", "uom": "EA"}
                         for k in range(LINES_PER_PO)]
                r = c.post(f"{self.up.url('requisitions')}/requisitions", headers=self.requester,
                           json={"title": f"bench {n}", "cost_center": cost_center,
                                 "currency": "EUR", "lines": lines})
                assert r.status_code == 201, r.text
                req_ids.append(r.json()["id"])
                r = c.post(f"{self.up.url('requisitions')}/requisitions/{req_ids[-1]}/submit",
                           headers=self.requester)
                assert r.status_code == 202, r.text
            deadline = time.monotonic() + 120
            for rid in req_ids:
                while True:
                    body = c.get(f"{self.up.url('requisitions')}/requisitions/{rid}",
                                 headers=self.requester).json()
                    if body.get("purchase_orders"):
                        po = body["purchase_orders"][0]
                        self.pos.append(po if isinstance(po, str) else po["po_number"])
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no PO for {rid}: {body.get('status')}")
                    time.sleep(0.1)
            for po in self.pos:
                r = c.post(f"{self.up.url('requisitions')}/purchase-orders/{po}/receipts",
                           headers=self.requester,
                           json={"lines": [{"line_no": k + 1, "quantity": "1000000000"}
                                           for k in range(LINES_PER_PO)]})
                assert r.status_code == 201, r.text

    def invoice(self) -> bytes:
        """A clean invoice: unique number and gross (so never a suspected duplicate)."""
        self.counter += 1
        n = self.counter
        po = self.pos[n % len(self.pos)]
        qty = n  # unique gross per invoice
        net = f"{qty * 10}.00"
        body = {
            "type": "invoice", "invoice_number": f"B{self.run_id}-{n}",
            "issue_date": date.today().isoformat(), "currency": "EUR",
            "supplier": {"id": "SUP-BENCH"}, "order_reference": po,
            "lines": [{"line_no": "1", "description": "bench item", "quantity": str(qty),
                       "unit_price": "10.00", "net_amount": net, "po_line_no": str(1 + n % LINES_PER_PO),
                       "tax_rate": "0"}],
            "totals": {"net": net, "tax": "0.00", "gross": net, "payable": net},
        }
        return json.dumps(body).encode()

    async def _post(self, client: httpx.AsyncClient, payload: bytes, sent: dict[str, float]) -> bool:
        """POST one invoice; on 201 record its id with the POST start time. False on failure."""
        headers = {**self.integration, "content-type": "application/json"}
        start = time.perf_counter()
        try:
            r = await client.post(f"{self.up.url('invoices')}/invoices", content=payload,
                                  headers=headers)
        except httpx.HTTPError:
            return False
        if r.status_code != 201:
            return False
        sent[r.json()["id"]] = start
        return True

    async def saturate(self, total: int, concurrency: int = 32) -> tuple[dict[str, float], int]:
        """As fast as the service takes them: `concurrency` clients posting back to back."""
        sent: dict[str, float] = {}
        errors = 0
        payloads = [self.invoice() for _ in range(total)]
        async with httpx.AsyncClient(timeout=60) as client:
            async def worker() -> None:
                nonlocal errors
                while payloads:
                    if not await self._post(client, payloads.pop(), sent):
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return sent, errors

    def wrk_script(self, path: Path) -> Path:
        """A wrk script posting clean invoices with numbers and amounts unique per request."""
        pos = ", ".join(f'"{p}"' for p in self.pos)
        path.write_text(WRK_SCRIPT % {"pos": pos, "run": self.run_id, "lines": LINES_PER_PO,
                                      "token": self.integration["Authorization"],
                                      "today": date.today().isoformat()})
        return path

    def saturate_wrk(self, wrk: str, seconds: float, connections: int, script: Path) -> dict:
        """wrk for `seconds`; returns its request, error and latency figures."""
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
             f"{self.up.url('invoices')}/invoices"],
            capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        socket_errors = re.search(r"Socket errors: (.*)", out)
        latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.MULTILINE))
        return {"requests": requests, "errors": int(non_2xx.group(1)) if non_2xx else 0,
                "socket_errors": socket_errors.group(1) if socket_errors else None,
                "post_latency": {f"p{k}": v for k, v in latency.items()}}

    async def offered_load(self, rate: float, seconds: float) -> tuple[dict[str, float], int]:
        """POST at a fixed rate; returns invoice id → POST start time, and the error count."""
        sent: dict[str, float] = {}
        errors = 0
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            async def one(payload: bytes) -> None:
                nonlocal errors
                if not await self._post(client, payload, sent):
                    errors += 1

            tasks = []
            t0 = time.perf_counter()
            total = int(rate * seconds)
            for i in range(total):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(self.invoice())))
            await asyncio.gather(*tasks)
        return sent, errors


def _bench_policy(tmp: Path) -> Path:
    policy = yaml.safe_load((REPO_ROOT / "deploy" / "approval-policy.yaml").read_text())
    policy["auto_approve_below"] = "1000000000000000"  # every bench requisition auto-approves
    path = tmp / "bench-policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def run(rate: float = 100, seconds: float = 15, saturation: int = 3000,
        saturation_seconds: float = 30, python_client: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="p2p-bench-e2e-"))
    up = start_up(tmp / "state", extra_env={"P2P_APPROVAL_POLICY": str(_bench_policy(tmp))})
    try:
        up.wait_ready()
        policy = yaml.safe_load((REPO_ROOT / "deploy" / "approval-policy.yaml").read_text())
        bench = Bench(up)
        bench.seed(policy["cost_centers"][0]["id"])
        listener = DecisionListener(up.kafka_bootstrap)

        # 1. fixed offered load
        sent, errors = asyncio.run(bench.offered_load(rate, seconds))
        listener.wait_for(set(sent), timeout=300)
        latencies = [listener.cleared[i] - t for i, t in sent.items() if i in listener.cleared]
        fixed = {
            "offered_per_s": rate, "invoices": len(sent), "errors": errors,
            "cleared": len(latencies), "not_cleared": len(sent) - len(latencies),
            "p50_s": round(percentile(latencies, 50), 3), "p95_s": round(percentile(latencies, 95), 3),
            "p99_s": round(percentile(latencies, 99), 3),
        }

        # 2. saturation: as fast as the client can push
        wrk = shutil.which("wrk")
        if wrk and not python_client:
            start = time.perf_counter()
            posted = bench.saturate_wrk(wrk, saturation_seconds, 32, bench.wrk_script(tmp / "post.lua"))
            post_s = time.perf_counter() - start
            created = posted["requests"] - posted["errors"]
            # wrk counts only the responses it read before its time was up: a few more invoices
            # may have been created. Settled once the count stops growing.
            done = listener.wait_for_count(start, created, timeout=300)
            done = listener.wait_for_quiet(start, quiet=2.0, timeout=60)
            listener.close()
            return {"fixed_load": fixed, "saturation": {
                "invoices": created, "errors": posted["errors"], "cleared": len(done),
                "intake_per_s": round(created / post_s, 1),
                "end_to_end_per_s": round(len(done) / (max(done) - start), 1) if done else 0,
                "post_latency": posted["post_latency"], "socket_errors": posted["socket_errors"],
                "client": "wrk -t2 -c32"},
                "non_cleared_outcomes": dict(Counter(listener.other.values()))}
        first_post = time.perf_counter()
        sent2, errors2 = asyncio.run(bench.saturate(saturation))
        post_s = time.perf_counter() - first_post
        listener.wait_for(set(sent2), timeout=300)
        done = [listener.cleared[i] for i in sent2 if i in listener.cleared]
        lat2 = [listener.cleared[i] - t for i, t in sent2.items() if i in listener.cleared]
        e2e_s = (max(done) - first_post) if done else float("nan")
        saturated = {
            "invoices": len(sent2), "errors": errors2, "cleared": len(done),
            "intake_per_s": round(len(sent2) / post_s, 1),
            "end_to_end_per_s": round(len(done) / e2e_s, 1) if done else 0,
            "p50_s": round(percentile(lat2, 50), 3), "p99_s": round(percentile(lat2, 99), 3),
            "client": "python-asyncio",
        }
        listener.close()
        return {"fixed_load": fixed, "saturation": saturated,
                "non_cleared_outcomes": dict(Counter(listener.other.values()))}
    finally:
        up.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--saturation", type=int, default=3000,
                        help="invoices the Python client posts (without wrk)")
    parser.add_argument("--saturation-seconds", type=float, default=30, help="wrk's duration")
    parser.add_argument("--python-client", action="store_true", help="saturate without wrk")
    args = parser.parse_args()
    result = run(args.rate, args.seconds, args.saturation, args.saturation_seconds,
                 args.python_client)
    print(json.dumps(result, indent=2), "->", save("e2e_invoices", result))


if __name__ == "__main__":
    main()
