"""Business metrics of the approvals service (`p2p_` prefix, base units, no ids as labels)."""

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter(
    "p2p_approval_decisions_total",
    "Final approval decisions, by outcome (approved, rejected, changes_requested; "
    "auto-approvals count as approved)",
    ["outcome"],
)
CYCLE = Histogram(
    "p2p_approval_cycle_seconds",
    "Time from submission to the final approval decision",
    buckets=(0.5, 1, 5, 60, 600, 3600, 4 * 3600, 86400, 2 * 86400, 5 * 86400, 10 * 86400),
)
TASKS_OPEN = Gauge("p2p_approval_tasks_open", "Approval tasks waiting for a decision")
