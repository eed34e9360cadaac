"""Logical topic names of §3; the physical name adds `Settings.topic_prefix`."""

REQUISITIONS = "p2p.requisitions"
APPROVALS = "p2p.approvals"
PURCHASE_ORDERS = "p2p.purchase-orders"
INVOICES = "p2p.invoices"
MATCHING = "p2p.matching"

ALL = (REQUISITIONS, APPROVALS, PURCHASE_ORDERS, INVOICES, MATCHING)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"
