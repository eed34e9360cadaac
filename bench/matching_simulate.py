"""`POST /tolerances/simulate` over 10,000 invoices: how long a what-if takes.

    .venv/bin/python -m bench.matching_simulate [--invoices 10000] [--pure-only]

Two figures:
- pure: stored-input JSON → domain objects → the engine under the current AND the candidate
  policy → comparison (what the endpoint does per invoice, without the database);
- database: the same through the matching service's own code path (`Matching.simulate`) on a
  real PostgreSQL (embedded, or P2P_DATABASE_URL) holding 10,000 invoices with their latest
  decision and stored inputs (5-line invoices), i.e. the endpoint minus HTTP.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import save
from bench.matching_engine import build_inputs
from services.matching.domain import inputs_to_json
from services.matching.handlers import Matching
from services.matching.policy import parse_policy
from services.matching.simulate import simulate_rows

CANDIDATE = {"default": {"price_pct": "10", "price_abs": "5.00", "price_rule": "either",
                         "qty_over_ordered_pct": "0", "qty_over_received_pct": "0",
                         "total_abs": "1.00"}}


def pure(n: int) -> tuple[float, float, dict]:
    current = parse_policy(yaml.safe_load((ROOT / "deploy" / "tolerances.yaml").read_text()))
    candidate = parse_policy(CANDIDATE)
    rows = [(i.invoice.invoice_id, "matched", inputs_to_json(i)) for i in build_inputs(n)]
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate_rows(rows, current, 1, candidate)
    return time.perf_counter() - t0, time.process_time() - c0, result


def with_database(n: int) -> tuple[float, float, dict]:
    from sqlalchemy import insert

    from services.matching import store
    from shared.db import Database, ensure_database, migrate, sqlalchemy_url
    from shared.devstack import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix="p2p-bench-sim-"))
    os.chmod(workdir, 0o755)
    pg = None
    try:
        server = os.environ.get("P2P_DATABASE_URL")
        if not server:
            pg = EmbeddedPostgres(workdir / "pg").start()
            server = pg.uri
        name = f"p2p_bench_matching_{uuid.uuid4().hex[:6]}"
        ensure_database(server, name)
        url = sqlalchemy_url(server, name)
        migrate(url, ROOT / "services" / "matching" / "migrations")
        db = Database(url, pool_size=2)
        now = datetime.now(UTC)
        policy_doc = yaml.safe_load((ROOT / "deploy" / "tolerances.yaml").read_text())
        with db.session() as s, s.begin():
            store.add_policy(s, parse_policy(policy_doc).document, "bench")
        inputs = build_inputs(n)
        for start in range(0, n, 1000):
            chunk = inputs[start:start + 1000]
            with db.session() as s, s.begin():
                s.execute(insert(store.InvoiceRow), [
                    {"invoice_id": i.invoice.invoice_id, "invoice_number": i.invoice.invoice_number,
                     "type": "invoice", "supplier_id": None, "order_reference": i.po.po_number,
                     "po_number": i.po.po_number, "currency": "EUR", "payable": i.invoice.payable,
                     "document": {}, "state": "cleared", "counts": True, "received_at": now,
                     "first_seen_at": now} for i in chunk])
                s.execute(insert(store.MatchDecisionRow), [
                    {"id": str(uuid.uuid4()), "invoice_id": i.invoice.invoice_id, "seq": 1,
                     "outcome": "matched", "po_number": i.po.po_number, "policy_version": 1,
                     "trigger": "bench", "decided_at": now, "checks": [],
                     "inputs": inputs_to_json(i)} for i in chunk])
        matching = Matching()
        candidate = parse_policy(CANDIDATE)
        t0, c0 = time.perf_counter(), time.process_time()
        with db.session() as s:
            result = matching.simulate(s, candidate, None, None)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        db.dispose()
        return elapsed, cpu, result
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _summary(result: dict) -> str:
    return (f"invoices={result['invoices']} current={result['current']['touchless_rate']} "
            f"candidate={result['candidate']['touchless_rate']} changed={len(result['changed'])} "
            f"accepted_variance={result['accepted_variance']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invoices", type=int, default=10000)
    ap.add_argument("--pure-only", action="store_true")
    args = ap.parse_args()
    seconds, cpu, result = pure(args.invoices)
    print(f"pure     wall {seconds:.2f}s, cpu {cpu:.2f}s ({args.invoices / cpu:,.0f} invoices/s "
          f"on one core)  {_summary(result)}")
    saved = {"invoices": args.invoices, "pure": {"wall_s": round(seconds, 3), "cpu_s": round(cpu, 3)}}
    if not args.pure_only:
        seconds, cpu, result = with_database(args.invoices)
        print(f"database wall {seconds:.2f}s, cpu {cpu:.2f}s in this process (PostgreSQL's own "
              f"time excluded)  {_summary(result)}")
        saved["database"] = {"wall_s": round(seconds, 3), "cpu_s": round(cpu, 3)}
    print(f"written to {save('matching_simulate', saved)}")


if __name__ == "__main__":
    main()
