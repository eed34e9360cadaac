"""Matching's business metrics (`p2p_` prefix, base units, no ids as labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.matching.domain import RULES

MATCH_OUTCOMES = Counter(
    "p2p_match_outcomes_total",
    "First final match decision per invoice (touchless rate = matched / all)",
    ["outcome"],
)
EXCEPTIONS_OPEN = Gauge(
    "p2p_exceptions_open", "Invoice exceptions not yet resolved, by failed rule", ["reason"]
)
EXCEPTION_AGE = Histogram(
    "p2p_exception_age_seconds",
    "Age of an invoice exception when it was resolved",
    buckets=(60, 300, 900, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 5 * 86400, 10 * 86400,
             30 * 86400),
)
INVOICE_CYCLE = Histogram(
    "p2p_invoice_cycle_seconds",
    "Invoice received to cleared for payment",
    buckets=(1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 2 * 86400, 5 * 86400, 10 * 86400,
             30 * 86400),
)


def set_open_exceptions(counts: dict[str, int]) -> None:
    for reason in RULES:
        EXCEPTIONS_OPEN.labels(reason).set(counts.get(reason, 0))
