"""The demo's closing summary: documents per status, touchless rate, exceptions by reason,
approval and invoice cycle times (p50/p95 from the timestamps the APIs return) and links."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from shared.cli.demo.runner import Outcome

INVOICE_ROLES = ("original", "suspect_duplicate")


def parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def approval_cycles(history: list[dict[str, Any]]) -> list[float]:
    """Seconds from each submission to its decision, from a requisition's history."""
    cycles: list[float] = []
    submitted: datetime | None = None
    for entry in history:
        to = entry.get("to_status")
        at = parse_ts(entry.get("at"))
        if to == "pending_approval":
            submitted = at
        elif to in ("approved", "rejected", "changes_requested") and submitted and at:
            cycles.append((at - submitted).total_seconds())
            submitted = None
    return cycles


def invoice_cycle(view: dict[str, Any]) -> float | None:
    """Seconds from receipt of the invoice to its clearance for payment."""
    received = parse_ts(view.get("received_at"))
    cleared = next((parse_ts(h.get("at")) for h in view.get("history") or []
                    if h.get("status") == "cleared_for_payment"), None)
    if received and cleared:
        return (cleared - received).total_seconds()
    return None


def was_touched(view: dict[str, Any]) -> bool:
    return any(h.get("status") == "exception" for h in view.get("history") or [])


@dataclass
class Summary:
    requisitions: Counter
    purchase_orders: Counter
    invoices: Counter
    formats: Counter
    invoices_total: int
    touchless: int
    cleared: int
    exceptions_by_reason: Counter
    resolutions: Counter
    exact_duplicates_refused: int
    suspected_duplicates_flagged: int
    approval_cycles: list[float]
    invoice_cycles: list[float]

    @property
    def touchless_rate(self) -> float:
        return self.touchless / self.invoices_total if self.invoices_total else 0.0


def summarise(outcome: Outcome) -> Summary:
    reqs = Counter(r.status for r in outcome.requisitions)
    pos = Counter(po.status for r in outcome.requisitions for po in r.pos)
    invoices = [i for i in outcome.invoices if i.id and i.role in INVOICE_ROLES]
    inv_status = Counter(i.status for i in invoices)
    credit = [i for i in outcome.invoices if i.id and i.role == "credit_note"]
    for cn in credit:
        inv_status[f"{cn.status} (credit notes)"] += 1
    cleared = [i for i in invoices if i.status == "cleared_for_payment"]
    touchless = [i for i in cleared if not was_touched(i.view)]
    by_reason: Counter = Counter()
    resolutions: Counter = Counter()
    for exc in outcome.exceptions.values():
        by_reason.update(exc.get("reasons") or [])
        action = (exc.get("resolution") or {}).get("action")
        resolutions[action or exc.get("status", "open")] += 1
    cycles = [c for r in outcome.requisitions for c in approval_cycles(r.view.get("history") or [])]
    inv_cycles = [c for c in (invoice_cycle(i.view) for i in invoices) if c is not None]
    return Summary(
        requisitions=reqs, purchase_orders=pos, invoices=inv_status,
        formats=Counter(i.fmt for i in outcome.invoices if i.id),
        invoices_total=len(invoices), touchless=len(touchless), cleared=len(cleared),
        exceptions_by_reason=by_reason, resolutions=resolutions,
        exact_duplicates_refused=sum(1 for i in outcome.invoices if i.refused == "duplicate"),
        suspected_duplicates_flagged=sum(1 for i in invoices
                                         if "suspected_duplicate" in i.flags),
        approval_cycles=cycles, invoice_cycles=inv_cycles,
    )


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def render(outcome: Outcome, console: Console) -> Summary:
    s = summarise(outcome)
    status = Table(title="Documents by status", title_justify="left")
    status.add_column("document")
    status.add_column("status")
    status.add_column("count", justify="right")
    for label, counter in (("requisitions", s.requisitions), ("purchase orders", s.purchase_orders),
                           ("invoices", s.invoices)):
        for n, (state, count) in enumerate(sorted(counter.items())):
            status.add_row(label if n == 0 else "", state, str(count))
        status.add_section()
    console.print(status)

    kpi = Table(title="Key figures", title_justify="left")
    kpi.add_column("measure")
    kpi.add_column("value", justify="right")
    kpi.add_row("touchless rate (cleared with no human touch / invoices accepted)",
                f"{s.touchless_rate:.0%} ({s.touchless} of {s.invoices_total})")
    kpi.add_row("invoices cleared for payment", str(s.cleared))
    kpi.add_row("invoices accepted by format",
                ", ".join(f"{k} {v}" for k, v in sorted(s.formats.items())))
    kpi.add_row("exact duplicates refused at intake (409)", str(s.exact_duplicates_refused))
    kpi.add_row("suspected duplicates flagged", str(s.suspected_duplicates_flagged))
    kpi.add_row("approval decisions (inbox)",
                ", ".join(f"{k} {v}" for k, v in sorted(outcome.decisions.items())) or "–")
    if outcome.plan.delegation:
        d = outcome.plan.delegation
        kpi.add_row(f"decided by {d.delegate} for {d.delegator} (delegation)",
                    str(outcome.delegated_decisions))
    kpi.add_row("approval cycle p50 / p95 (submit → decision)",
                f"{_secs(percentile(s.approval_cycles, 50))} / "
                f"{_secs(percentile(s.approval_cycles, 95))}")
    kpi.add_row("invoice cycle p50 / p95 (received → cleared)",
                f"{_secs(percentile(s.invoice_cycles, 50))} / "
                f"{_secs(percentile(s.invoice_cycles, 95))}")
    kpi.add_row("run", f"seed {outcome.plan.seed}, plan {outcome.plan.fingerprint()}, "
                f"{outcome.finished - outcome.started:.0f} s, {outcome.api_calls} API calls")
    console.print(kpi)

    exc = Table(title="Exceptions by reason", title_justify="left")
    exc.add_column("reason")
    exc.add_column("exceptions", justify="right")
    for reason, count in s.exceptions_by_reason.most_common():
        exc.add_row(reason, str(count))
    exc.add_section()
    for action, count in sorted(s.resolutions.items()):
        exc.add_row(f"resolution: {action}", str(count))
    console.print(exc)

    links = Table(title="Look closer", title_justify="left")
    links.add_column("what")
    links.add_column("where")
    for what, url in outcome.links:
        links.add_row(what, url)
    console.print(links)
    return s
