"""Micro-benchmark of the matching engine: invoice lines matched per second on one core.

    .venv/bin/python bench/matching_engine.py [--invoices 20000] [--repeat 3]

Each invoice has 5 lines against a 5-line three-way PO with receipts and prior invoicing,
under the shipped tolerance policy (deploy/tolerances.yaml); a fifth of the invoices carry a
price above tolerance and a tenth pair one line by description, so every code path runs.
Single-threaded (one core); reports the best of `--repeat` runs, by CPU time.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import save
from services.matching.domain import (
    Invoice,
    Invoiced,
    InvoiceLine,
    MatchInputs,
    PoLine,
    PurchaseOrder,
    supplier_keys,
)
from services.matching.engine import match
from services.matching.policy import parse_policy

DESCRIPTIONS = ("Laptop 14 inch", "USB-C docking station", "Office chair ergonomic",
                "Consulting hours", "Monitor 27 inch 4K")


def build_inputs(n: int) -> list[MatchInputs]:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    out = []
    for i in range(n):
        po_lines = tuple(
            PoLine(line_no=j + 1, description=DESCRIPTIONS[j], quantity=Decimal(100),
                   unit_price=Decimal("120.00") + j, category="IT" if j == 0 else "OFFICE",
                   receipt_required=j != 3)
            for j in range(5)
        )
        po = PurchaseOrder(po_number=f"PO-{i:06d}", supplier_id="SUP-ACME",
                           supplier_keys=supplier_keys("SUP-ACME", "DE123456789"),
                           currency="EUR", lines=po_lines, requester="alice",
                           vat_id="DE123456789")
        lines = []
        for j in range(5):
            price = Decimal("120.00") + j + (Decimal("9.99") if i % 5 == 0 and j == 2 else 0)
            qty = Decimal(10)
            lines.append(InvoiceLine(
                line_no=str(j + 1),
                description=DESCRIPTIONS[j].upper() if i % 10 == 0 and j == 4 else DESCRIPTIONS[j],
                quantity=qty, unit_price=price, net_amount=qty * price,
                po_line_no=None if i % 10 == 0 and j == 4 else str(j + 1)))
        net = sum((ln.net_amount for ln in lines), Decimal(0))
        inv = Invoice(invoice_id=f"inv-{i}", invoice_number=f"INV-{i}", type="invoice",
                      currency="EUR", supplier_id=None,
                      supplier_keys=supplier_keys(None, "DE 123 456 789"),
                      order_reference=po.po_number, lines=tuple(lines), net=net,
                      payable=net * Decimal("1.19"), vat_id="DE 123 456 789")
        out.append(MatchInputs(
            invoice=inv, po=po,
            received={j + 1: Decimal(50) for j in range(5)},
            prior={j + 1: Invoiced(Decimal(20), Decimal(2400)) for j in range(5)},
            first_seen_at=now, now=now))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invoices", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    policy = parse_policy(yaml.safe_load((ROOT / "deploy" / "tolerances.yaml").read_text()))
    inputs = build_inputs(args.invoices)
    lines = sum(len(i.invoice.lines) for i in inputs)
    best_cpu = best_wall = float("inf")
    outcomes: dict[str, int] = {}
    for _ in range(args.repeat):
        outcomes = {}
        w0, c0 = time.perf_counter(), time.process_time()
        for inp in inputs:
            d = match(inp, policy, 1)
            outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    print(f"invoices={args.invoices} lines={lines} outcomes={outcomes}")
    print(f"cpu {best_cpu:.3f}s -> {lines / best_cpu:,.0f} invoice lines/s on one core "
          f"({args.invoices / best_cpu:,.0f} invoices/s); wall {best_wall:.3f}s")
    path = save("matching_engine", {
        "invoices": args.invoices, "lines": lines, "lines_per_invoice": 5, "outcomes": outcomes,
        "cpu_s": round(best_cpu, 4), "wall_s": round(best_wall, 4),
        "lines_per_s": round(lines / best_cpu), "invoices_per_s": round(args.invoices / best_cpu),
        "lines_per_s_wall": round(lines / best_wall)})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
