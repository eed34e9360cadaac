"""`p2p bench`: every benchmark in one run, a table against the targets and the machine's ceiling.

Each benchmark is its own script under `bench/` (runnable alone); this runs them one after the
other in subprocesses (so they don't share a GIL or a warm cache), reads the JSON each one saved
under `bench/results/`, and writes the combined result there too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shared.devstack import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
console = Console()

# name saved by the script → (module, args, args when --quick)
STEPS: dict[str, tuple[str, list[str], list[str]]] = {
    "matching_engine": ("bench.matching_engine", ["--invoices", "20000"], ["--invoices", "4000", "--repeat", "1"]),
    "invoice_intake": ("bench.invoice_intake", ["--docs", "2000"], ["--docs", "300"]),
    "approvals": ("bench.approvals_throughput", [], ["--auto", "60", "--one", "30", "--inbox", "100"]),
    "e2e_invoices": ("bench.e2e_invoices", [], ["--seconds", "5", "--saturation", "600"]),
    "ceiling": ("bench.ceiling", ["--items", "5000"], ["--items", "1000"]),
}


def _latest(name: str, since: float) -> dict | None:
    found = sorted((p for p in RESULTS.glob(f"{name}-*.json") if p.stat().st_mtime >= since),
                   key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()) if found else None


def _get(data: dict | None, *path: str):  # noqa: ANN202
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def run_bench(quick: bool = False, only: list[str] | None = None) -> int:
    results: dict[str, dict | None] = {}
    for name, (module, args, quick_args) in STEPS.items():
        if only and name not in only:
            continue
        console.rule(f"{name}")
        start = time.time()
        code = subprocess.call([sys.executable, "-m", module, *(quick_args if quick else args)],
                               cwd=REPO_ROOT)
        results[name] = _latest(name, start) if code == 0 else None
        if code != 0:
            console.print(f"[red]{name} failed (exit {code})[/]")
    combined = {"quick": quick, "results": results, "summary": summarise(results)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{int(time.time())}.json"
    path.write_text(json.dumps(combined, indent=2, default=str))
    print_table(combined["summary"])
    console.print(f"written to {path}")
    return 0 if all(results.values()) else 1


def summarise(r: dict[str, dict | None]) -> list[dict]:
    ceiling_pipeline = _get(r.get("ceiling"), "pipeline_3_stages_items_per_s")
    ceiling_tx = _get(r.get("ceiling"), "pg_transactions_per_s_one_connection")
    ceiling_intake = _get(r.get("ceiling"), "intake_shaped_transactions_per_s")

    def row(metric: str, value, target: str = "", ceiling=None, unit: str = "") -> dict:  # noqa: ANN001
        ratio = round(value / ceiling, 2) if value and ceiling else None
        return {"metric": metric, "value": value, "unit": unit, "target": target,
                "ceiling": ceiling, "ratio_to_ceiling": ratio}

    return [
        row("matching engine", _get(r.get("matching_engine"), "lines_per_s"), "≥ 50,000", None,
            "invoice lines/s, one core"),
        row("invoice intake (UBL, HTTP)", _get(r.get("invoice_intake"), "http", "docs_per_s"), "",
            ceiling_intake, "documents/s"),
        row("end to end, saturation", _get(r.get("e2e_invoices"), "saturation", "end_to_end_per_s"),
            "≥ 300", ceiling_pipeline, "invoices/s"),
        row("end to end p50 @ fixed load", _get(r.get("e2e_invoices"), "fixed_load", "p50_s"), "", None, "s"),
        row("end to end p95 @ fixed load", _get(r.get("e2e_invoices"), "fixed_load", "p95_s"), "", None, "s"),
        row("end to end p99 @ fixed load", _get(r.get("e2e_invoices"), "fixed_load", "p99_s"),
            "≤ 1 s @ 100/s", None, "s"),
        row("approvals, auto-approve", _get(r.get("approvals"), "auto_approve", "workflows_per_s"),
            "≥ 100", ceiling_pipeline, "requisitions/s"),
        row("approvals, one approver", _get(r.get("approvals"), "one_approver", "workflows_per_s"),
            "", ceiling_pipeline, "requisitions/s"),
        row("inbox p95, 500 open tasks, page of 50", _get(r.get("approvals"), "inbox", "limit_50", "p95_ms"),
            "", None, "ms"),
        row("ceiling: 3-stage PG+Kafka pipeline", ceiling_pipeline, "", None, "items/s"),
        row("ceiling: PG transactions, one connection", ceiling_tx, "", None, "tx/s"),
        row("ceiling: intake-shaped transactions, 4 connections", ceiling_intake, "", None, "tx/s"),
    ]


def print_table(summary: list[dict]) -> None:
    table = Table(title="p2p bench")
    for col in ("metric", "value", "unit", "target", "ratio to ceiling"):
        table.add_column(col, justify="right" if col in ("value", "ratio to ceiling") else "left")
    for row in summary:
        value = row["value"]
        shown = "—" if value is None else (f"{value:,.0f}" if isinstance(value, (int, float)) and value >= 100
                                            else str(value))
        ratio = "" if row["ratio_to_ceiling"] is None else f"{row['ratio_to_ceiling']:.2f}"
        table.add_row(row["metric"], shown, row["unit"], row["target"], ratio)
    console.print(table)


if __name__ == "__main__":
    sys.exit(run_bench(quick="--quick" in sys.argv))
