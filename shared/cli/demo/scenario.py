"""The demo's month as a deterministic plan: who buys what from whom, who decides how, what is
received when, and which invoice (format, fault) each supplier sends. Pure: the same world and
seed give the same plan; the runner turns it into HTTP calls.

All randomness comes from one `random.Random(seed)`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shared.cli.demo.world import SupplierProfile, World

FORMATS = ("json", "ubl", "cii", "facturx", "csv")

# Approval outcomes the plan scripts (the service decides routing; the plan decides answers).
AUTO, APPROVE, REJECT, CHANGES, CANCEL = "auto", "approve", "reject", "changes", "cancel"
# Receipts of a PO's goods lines relative to its invoice.
FULL, PARTIAL_THEN_REST, LATE, PARTIAL_ONLY, SERVICES_ONLY = (
    "full", "partial_then_rest", "late", "partial_only", "services_only")
# What is wrong with the supplier's invoice.
CLEAN, PRICE_WITHIN, PRICE_OUTSIDE, OVER_BILLED, WRONG_PO, NO_PO, EXACT_DUP, SUSPECT_DUP = (
    "clean", "price_within", "price_outside", "over_billed", "wrong_po", "no_po",
    "exact_duplicate", "suspected_duplicate")
# AP clerk actions.
ACCEPT, REJECT_INV, CREDIT_NOTE, REMATCH = "accept", "reject", "request_credit_note", "rematch"

# Expected exception reason per fault (what the clerk will see) and what the clerk does.
FAULT_RESOLUTION = {
    PRICE_OUTSIDE: ACCEPT,
    OVER_BILLED: CREDIT_NOTE,
    WRONG_PO: REJECT_INV,
    NO_PO: REJECT_INV,
    SUSPECT_DUP: REJECT_INV,
}

_APPROVAL_WEIGHTS = ((APPROVE, 80), (REJECT, 7), (CHANGES, 8), (CANCEL, 5))
_RECEIPT_WEIGHTS = ((FULL, 58), (PARTIAL_THEN_REST, 14), (LATE, 16), (PARTIAL_ONLY, 12))
_FAULT_WEIGHTS = ((CLEAN, 72), (PRICE_WITHIN, 11), (PRICE_OUTSIDE, 9), (OVER_BILLED, 7),
                  (WRONG_PO, 6), (NO_PO, 4), (EXACT_DUP, 7), (SUSPECT_DUP, 6))
# The faults every run of a reasonable size shows at least once.
_MUST_SHOW = (PRICE_OUTSIDE, OVER_BILLED, WRONG_PO, SUSPECT_DUP, EXACT_DUP, PRICE_WITHIN, NO_PO)


@dataclass(frozen=True)
class Item:
    description: str
    uom: str
    median_price: Decimal
    receipt_required: bool = True
    qty_range: tuple[int, int] = (1, 10)


CATALOG: dict[str, tuple[Item, ...]] = {
    "IT": (
        Item("Laptop 14in, 32 GB RAM", "EA", Decimal("1450"), qty_range=(1, 6)),
        Item("27in USB-C monitor", "EA", Decimal("340"), qty_range=(1, 10)),
        Item("Docking station", "EA", Decimal("210"), qty_range=(1, 10)),
        Item("Cloud backup subscription (monthly)", "MON", Decimal("95"), False, (1, 12)),
        Item("Network switch 24 port", "EA", Decimal("880"), qty_range=(1, 3)),
    ),
    "OFFICE": (
        Item("Printer paper A4, box of 5 reams", "XBX", Decimal("24.50"), qty_range=(5, 40)),
        Item("Ergonomic office chair", "EA", Decimal("420"), qty_range=(1, 8)),
        Item("Whiteboard markers, pack of 12", "XPK", Decimal("11.90"), qty_range=(2, 20)),
        Item("Standing desk frame", "EA", Decimal("560"), qty_range=(1, 6)),
    ),
    "FACILITIES": (
        Item("LED panel 60x60", "EA", Decimal("48"), qty_range=(4, 40)),
        Item("Deep cleaning, open-plan floor", "HUR", Decimal("38"), False, (8, 40)),
        Item("HVAC filter set", "SET", Decimal("135"), qty_range=(1, 6)),
    ),
    "SOFTWARE": (
        Item("IDE licence, annual", "EA", Decimal("590"), False, (1, 15)),
        Item("Observability platform, annual", "EA", Decimal("9800"), False, (1, 1)),
        Item("Security scanner seat", "EA", Decimal("320"), False, (1, 20)),
    ),
    "SERVICES": (
        Item("Senior consultant", "HUR", Decimal("145"), False, (8, 80)),
        Item("Training workshop (1 day)", "DAY", Decimal("1200"), False, (1, 3)),
        Item("Translation of technical manual", "HUR", Decimal("65"), False, (4, 30)),
    ),
}


def items_for(category: str) -> tuple[Item, ...]:
    found = CATALOG.get(category.upper())
    if found:
        return found
    return (Item(f"{category.title()} supplies", "EA", Decimal("120"), qty_range=(1, 10)),
            Item(f"{category.title()} service", "HUR", Decimal("90"), False, (2, 20)))


@dataclass(frozen=True)
class LinePlan:
    description: str
    category: str
    quantity: Decimal
    uom: str
    unit_price: Decimal
    supplier_id: str
    receipt_required: bool

    @property
    def amount(self) -> Decimal:
        return (self.quantity * self.unit_price).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class InvoicePlan:
    format: str
    fault: str
    resolution: str | None  # what the AP clerk does with the exception (None: no exception)
    number: str  # the supplier's invoice number (the runner prefixes a run tag)
    issue_day: int  # day of the simulated month
    price_factor: Decimal  # unit price on the invoice = PO price × factor
    wrong_po_from: int | None = None  # index of the requisition whose PO is wrongly quoted


@dataclass(frozen=True)
class PoPlan:
    supplier_id: str
    receipt: str
    invoice: InvoicePlan
    receipt_day: int  # day the goods arrive (before or after the invoice, per `receipt`)


@dataclass(frozen=True)
class RequisitionPlan:
    index: int
    requester: str
    cost_center: str
    currency: str
    title: str
    justification: str
    day: int  # day of the month it is raised
    lines: tuple[LinePlan, ...]
    approval: str
    expected_chain: tuple[str, ...]
    decide_level: int  # for reject/changes: the level (1-based) that says so
    pos: tuple[PoPlan, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class Delegation:
    delegator: str
    delegate: str


@dataclass(frozen=True)
class Plan:
    seed: int
    month_start: date
    requisitions: tuple[RequisitionPlan, ...]
    delegation: Delegation | None

    def day(self, n: int) -> date:
        return self.month_start + timedelta(days=n)

    def fingerprint(self) -> str:
        """A short digest of the plan: equal for equal plans (used to show determinism)."""
        import hashlib

        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _requesters(world: World) -> list[str]:
    """Staff: people nobody reports to (the leaves of the org chart)."""
    managers = {p.manager for p in world.people if p.manager}
    leaves = [p for p in world.people if p.id not in managers and p.manager]
    # Specialists without reports but with a real approval limit are approvers, not staff.
    staff = [p.id for p in leaves
             if p.approval_limit is None or p.approval_limit <= world.auto_approve_below]
    return staff or [p.id for p in leaves] or [world.people[0].id]


def _home_cost_center(world: World, requester: str) -> str | None:
    """The cost center owned by the nearest manager above the requester."""
    owners = {c.owner: c.id for c in world.cost_centers}
    person, seen = world.person(requester), set()
    while person and person.manager and person.manager not in seen:
        seen.add(person.manager)
        if person.manager in owners:
            return owners[person.manager]
        person = world.person(person.manager)
    return None


def _delegation(world: World, requesters: list[str]) -> Delegation | None:
    """The owner of the first cost center goes on holiday; a peer (same manager, least involved
    in the policy's rules) covers."""
    delegator = world.cost_centers[0].owner
    me = world.person(delegator)
    if me is None:
        return None
    in_rules = [a for approvers in world._rule_approvers.values() for a in approvers]
    peers = [p.id for p in world.people
             if p.id != delegator and p.id not in requesters and p.manager == me.manager
             and p.approval_limit is not None]
    peers.sort(key=in_rules.count)
    others = [p.id for p in world.people if p.id not in (delegator, *requesters)]
    chosen = (peers or others or [None])[0]
    return Delegation(delegator, chosen) if chosen else None


def _suppliers_for(rng: random.Random, world: World, currency: str) -> list[SupplierProfile]:
    same = [s for s in world.suppliers if s.currency == currency]
    count = 2 if len(same) > 1 and rng.random() < 0.3 else 1
    return rng.sample(same, count)


def _lines(rng: random.Random, world: World, suppliers: list[SupplierProfile]) -> list[LinePlan]:
    # A requisition's size is log-normal: most are a few hundred to a few thousand, some large.
    scale = rng.lognormvariate(0, 0.9)
    lines: list[LinePlan] = []
    for supplier in suppliers:
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            category = rng.choice(world.categories)
            item = rng.choice(items_for(category))
            lo, hi = item.qty_range
            quantity = Decimal(max(1, round(rng.randint(lo, hi) * min(scale, 3))))
            # Prices in the supplier's currency: the base median converted at the policy's rate.
            rate = world.fx_rates.get(supplier.currency, Decimal(1))
            median = float(item.median_price / rate) if rate else float(item.median_price)
            price = _money(median * rng.lognormvariate(0, 0.25) * max(scale, 0.4))
            if any(line.description == item.description and line.supplier_id == supplier.id
                   for line in lines):
                continue
            lines.append(LinePlan(item.description, category, quantity, item.uom,
                                  max(price, Decimal("0.50")), supplier.id, item.receipt_required))
    return lines


def _invoice_for(rng: random.Random, world: World, index: int, supplier: SupplierProfile,
                 lines: list[LinePlan], fault: str, fmt: str, receipt_day: int,
                 receipt: str) -> InvoicePlan:
    factor = Decimal(1)
    if fault in (PRICE_WITHIN, PRICE_OUTSIDE):
        # Drift relative to the tolerance that applies to the first line.
        first = lines[0]
        tol = world.tolerances.for_line(supplier.id, first.category)
        allowed = tol.max_price_increase(first.unit_price)
        if fault == PRICE_WITHIN:
            increase = allowed * Decimal(rng.choice(("0.3", "0.5", "0.7")))
        else:
            increase = allowed * Decimal(rng.choice(("2", "3", "4"))) + Decimal("0.05")
        factor = ((first.unit_price + increase) / first.unit_price).quantize(Decimal("0.000001"))
    issue = receipt_day + rng.randint(0, 3) if receipt in (FULL, PARTIAL_ONLY, SERVICES_ONLY) \
        else max(receipt_day - rng.randint(2, 6), 0)
    return InvoicePlan(
        format=fmt,
        fault=fault,
        resolution=FAULT_RESOLUTION.get(fault),
        number=f"{supplier.id.split('-')[-1][:3]}{index + 1:04d}",
        issue_day=min(issue, 29),
        price_factor=factor,
    )


def build_plan(world: World, requisitions: int = 40, seed: int = 42,
               month_start: date = date(2026, 10, 1)) -> Plan:
    if requisitions < 1:
        raise ValueError("requisitions must be at least 1")
    rng = random.Random(seed)
    requesters = _requesters(world)
    delegation = _delegation(world, requesters)
    currencies = list(dict.fromkeys(s.currency for s in world.suppliers))
    weights = [6 if c == world.base_currency else 1 for c in currencies]
    # Every format and the instructive faults appear early, then the mix is random.
    formats = list(FORMATS)
    rng.shuffle(formats)
    must_show = list(_MUST_SHOW)
    rng.shuffle(must_show)
    must_decide = [REJECT, CHANGES, CANCEL]
    rng.shuffle(must_decide)
    ordered_pos = needs_approval = 0
    plans: list[RequisitionPlan] = []
    for index in range(requisitions):
        currency = rng.choices(currencies, weights=weights)[0]
        suppliers = _suppliers_for(rng, world, currency)
        lines = _lines(rng, world, suppliers)
        requester = rng.choice(requesters)
        home = _home_cost_center(world, requester)
        cc = next((c for c in world.cost_centers if c.id == home), None) \
            if rng.random() < 0.85 else None
        cc = cc or rng.choice(world.cost_centers)
        total = sum((line.amount for line in lines), Decimal(0))
        chain = world.chain_for(requester, cc.id, world.to_base(total, currency),
                                {line.category for line in lines})
        approval = AUTO if not chain else _pick(rng, _APPROVAL_WEIGHTS)
        if chain:
            needs_approval += 1
            if must_decide and needs_approval % 3 == 2:
                approval = must_decide.pop()
        decide_level = rng.randint(1, len(chain)) if chain else 0
        if approval == CHANGES:
            decide_level = 1
        day = min(index * 20 // requisitions, 19)
        pos: list[PoPlan] = []
        for supplier in suppliers:
            sup_lines = [line for line in lines if line.supplier_id == supplier.id]
            goods = any(line.receipt_required for line in sup_lines)
            receipt = _pick(rng, _RECEIPT_WEIGHTS) if goods else SERVICES_ONLY
            ordered = approval in (AUTO, APPROVE, CHANGES)
            # Every format on an ordered PO early on, then a random mix.
            fmt = formats.pop() if ordered and formats else rng.choice(FORMATS)
            # The instructive faults go on every third ordered PO: clean ones stay the norm.
            if ordered and must_show and ordered_pos % 3 == 1:
                fault = must_show.pop()
            else:
                fault = _pick(rng, _FAULT_WEIGHTS)
            ordered_pos += ordered
            if fault == OVER_BILLED and receipt in (PARTIAL_THEN_REST, LATE, PARTIAL_ONLY):
                receipt = FULL  # over-billing shows against what was ordered and received
            receipt_day = day + rng.randint(3, 9)
            invoice = _invoice_for(rng, world, index, supplier, sup_lines, fault, fmt,
                                   receipt_day, receipt)
            if fault == WRONG_PO:
                others = [p.index for p in plans if p.approval in (AUTO, APPROVE, CHANGES)
                          and all(po.supplier_id != supplier.id for po in p.pos)]
                if others:
                    invoice = _with_wrong_po(invoice, rng.choice(others))
                else:
                    invoice = _with_fault(invoice, NO_PO)
            pos.append(PoPlan(supplier.id, receipt, invoice, receipt_day))
        plans.append(RequisitionPlan(
            index=index,
            requester=requester,
            cost_center=cc.id,
            currency=currency,
            title=_title(lines),
            justification=rng.choice(JUSTIFICATIONS),
            day=day,
            lines=tuple(lines),
            approval=approval,
            expected_chain=tuple(chain),
            decide_level=decide_level,
            pos=tuple(pos),
        ))
    return Plan(seed=seed, month_start=month_start, requisitions=tuple(plans),
                delegation=delegation)


def _with_wrong_po(invoice: InvoicePlan, other: int) -> InvoicePlan:
    return InvoicePlan(invoice.format, invoice.fault, invoice.resolution, invoice.number,
                       invoice.issue_day, invoice.price_factor, wrong_po_from=other)


def _with_fault(invoice: InvoicePlan, fault: str) -> InvoicePlan:
    return InvoicePlan(invoice.format, fault, FAULT_RESOLUTION.get(fault), invoice.number,
                       invoice.issue_day, invoice.price_factor)


def _title(lines: list[LinePlan]) -> str:
    first = lines[0].description
    return first if len(lines) == 1 else f"{first} and {len(lines) - 1} more"


JUSTIFICATIONS = (
    "New starters next month",
    "Replacement of worn-out equipment",
    "Quarterly restock",
    "Project kick-off",
    "Budgeted in the annual plan",
    "Requested by the facilities survey",
)
