"""Business metrics of the requisitions service (counted after the transaction commits)."""

from prometheus_client import Counter

REQUISITIONS_SUBMITTED = Counter(
    "p2p_requisitions_submitted_total", "Requisitions submitted for approval (resubmissions count)"
)
PURCHASE_ORDERS_ISSUED = Counter("p2p_purchase_orders_issued_total", "Purchase orders issued")
GOODS_RECEIPTS_RECORDED = Counter(
    "p2p_goods_receipts_recorded_total", "Goods receipts (and returns) recorded against POs"
)
