"""What-if: replay stored match inputs under the current and a candidate tolerance policy.

Pure apart from iterating the rows it is given; changes nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from services.matching.domain import Outcome, inputs_from_json
from services.matching.engine import match
from services.matching.policy import TolerancePolicy


def simulate_rows(rows: Iterable[tuple[str, str, dict[str, Any]]], current: TolerancePolicy,
                  version: int, candidate: TolerancePolicy) -> dict[str, Any]:
    """Replay (invoice id, stored outcome, inputs JSON) rows under both policies.

    Both sides are replayed, so only the policy differs between `current` and `candidate`;
    the touchless rate is matched / invoices; `accepted_variance` sums, per currency, the
    variance the candidate would let through without a human."""
    invoices = touchless_now = touchless_then = 0
    changed: list[dict[str, str]] = []
    variance: dict[str, Decimal] = {}
    for invoice_id, _, inputs_json in rows:
        inputs = inputs_from_json(inputs_json)
        before = match(inputs, current, version)
        after = match(inputs, candidate, 0)
        invoices += 1
        if before.outcome == Outcome.MATCHED:
            touchless_now += 1
        if after.outcome == Outcome.MATCHED:
            touchless_then += 1
            currency = inputs.invoice.currency
            variance[currency] = variance.get(currency, Decimal(0)) + after.accepted_variance
        if before.outcome != after.outcome:
            changed.append({"invoice_id": invoice_id, "current": before.outcome,
                            "candidate": after.outcome})
    rate = (lambda n: round(n / invoices, 4) if invoices else 0.0)
    return {
        "invoices": invoices,
        "current": {"version": version, "touchless_rate": rate(touchless_now)},
        "candidate": {"touchless_rate": rate(touchless_then)},
        "changed": changed,
        "accepted_variance": {c: str(v.quantize(Decimal("0.01"))) for c, v in sorted(variance.items())},
    }
