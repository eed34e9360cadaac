"""Event contracts, owned by their producers (one module each), and the registry of §3 types.

`ce_type` is `p2p.<aggregate>.<event>.v<major>`: additive changes keep the type, breaking ones
add a new major version that producers emit alongside the old until consumers move.
"""

from __future__ import annotations

from shared.contracts.base import Contract
from shared.contracts import approvals, invoices, matching, requisitions

REGISTRY: dict[str, type[Contract]] = {
    model.ce_type: model
    for module in (requisitions, approvals, invoices, matching)
    for model in module.EVENTS
}


def model_for(ce_type: str) -> type[Contract] | None:
    return REGISTRY.get(ce_type)


__all__ = ["Contract", "REGISTRY", "model_for"]
