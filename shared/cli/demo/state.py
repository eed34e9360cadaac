"""What a demo run knows about its documents as it goes, and what it hands the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.cli.demo import documents as docs
from shared.cli.demo import scenario as sc
from shared.cli.demo.world import World

ADMIN = ("demo-admin", ("admin",))
RECEIVER = ("dock-rita", ("receiver",))
INTAKE = ("peppol-access-point", ("integration",))
CLERKS = ("paula", "omar")
SETTLED_REQ = {"approved", "ordered", "partially_received", "received", "rejected", "cancelled"}
ORDERED_REQ = {"approved", "ordered", "partially_received", "received"}
IN_FLIGHT_INVOICE = {"received", "matching"}
FINAL_INVOICE = {"cleared_for_payment", "rejected"}

@dataclass(eq=False)  # identity: runs refer to each other
class PoRun:
    plan: sc.PoPlan
    requisition: ReqRun
    number: str = ""
    lines: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""


@dataclass(eq=False)  # identity: runs refer to each other
class InvoiceRun:
    po: PoRun | None
    doc: docs.InvoiceDoc
    fmt: str
    role: str  # original | suspect_duplicate | exact_duplicate | credit_note
    fault: str
    id: str | None = None
    status: str = ""
    refused: str | None = None  # why intake refused it (e.g. duplicate)
    flags: list[str] = field(default_factory=list)
    view: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)  # identity: runs refer to each other
class ReqRun:
    plan: sc.RequisitionPlan
    id: str = ""
    status: str = "draft"
    resubmitted: bool = False
    cancel_sent: bool = False
    levels: int | None = None
    pos: list[PoRun] = field(default_factory=list)
    view: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """Everything the report needs."""

    plan: sc.Plan
    world: World
    requisitions: list[ReqRun]
    invoices: list[InvoiceRun]
    exceptions: dict[str, dict[str, Any]]
    decisions: dict[str, int]
    delegated_decisions: int
    problems: list[str]
    started: float
    finished: float
    api_calls: int
    links: list[tuple[str, str]]
