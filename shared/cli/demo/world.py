"""What the demo knows about the organisation: the approval policy (users, cost centers,
categories, currencies, routing limits), the tolerance policy and the demo suppliers.

Read at run time from the running stack (`GET /policy`, `GET /tolerances`) or, failing that,
from the files the stack loads (`deploy/approval-policy.yaml`, `deploy/tolerances.yaml`), so the
demo follows whatever policy is deployed instead of hard-coding people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

# Categories every organisation buys in, used next to the ones the policy's rules name.
COMMON_CATEGORIES = ("OFFICE", "FACILITIES", "SERVICES")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    manager: str | None = None
    approval_limit: Decimal | None = None  # None = unlimited


@dataclass(frozen=True)
class CostCenter:
    id: str
    name: str
    owner: str


@dataclass(frozen=True)
class Tolerance:
    price_pct: Decimal = Decimal("2")
    price_abs: Decimal = Decimal("5.00")
    price_rule: str = "either"
    qty_over_ordered_pct: Decimal = Decimal("0")
    qty_over_received_pct: Decimal = Decimal("0")

    def merged(self, overrides: dict[str, Any] | None) -> Tolerance:
        if not overrides:
            return self
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key, value in overrides.items():
            if key in values:
                values[key] = value if key == "price_rule" else Decimal(str(value))
        return Tolerance(**values)

    def max_price_increase(self, price: Decimal) -> Decimal:
        """The largest unit price increase over `price` that still passes the price check."""
        pct = price * self.price_pct / 100
        if self.price_rule == "both":
            return min(pct, self.price_abs)
        return max(pct, self.price_abs)


@dataclass(frozen=True)
class Tolerances:
    default: Tolerance = field(default_factory=Tolerance)
    suppliers: dict[str, dict[str, Any]] = field(default_factory=dict)
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_line(self, supplier_id: str, category: str | None) -> Tolerance:
        tol = self.default.merged(self.suppliers.get(supplier_id))
        return tol.merged(self.categories.get(category or ""))


@dataclass(frozen=True)
class SupplierProfile:
    id: str
    name: str
    currency: str
    vat_id: str
    peppol_id: str  # scheme:value
    country: str
    city: str

    def as_request(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "vat_id": self.vat_id,
                "peppol_id": self.peppol_id, "currency": self.currency,
                "identifiers": [self.peppol_id]}


# The supplier of the real PEPPOL BIS 3.0 example (base-example.xml): its endpoint id and VAT
# number, so the example can be sent unchanged apart from the order reference and lines.
PEPPOL_EXAMPLE_SUPPLIER = SupplierProfile(
    "SUP-PEPPOL", "SupplierTradingName Ltd.", "EUR", "GB1232434", "0088:9482348239847239874",
    "GB", "London")

DEMO_SUPPLIERS: tuple[SupplierProfile, ...] = (
    SupplierProfile("SUP-ACME", "ACME Industrial Supplies GmbH", "EUR", "DE811907980",
                    "0088:4000001000005", "DE", "Hamburg"),
    PEPPOL_EXAMPLE_SUPPLIER,
    SupplierProfile("SUP-CONTOSO", "Contoso Services BV", "EUR", "NL859230123B01",
                    "0106:30123456", "NL", "Utrecht"),
    SupplierProfile("SUP-GLOBEX", "Globex Computing Ltd", "GBP", "GB293847561",
                    "0088:5060012340007", "GB", "Manchester"),
    SupplierProfile("SUP-INITECH", "Initech Consulting Inc", "USD", "US-EIN-943821731",
                    "0060:081466849", "US", "Austin"),
    SupplierProfile("SUP-NORDIC", "Nordic Kontorsmaterial AB", "SEK", "SE556677889901",
                    "0007:5566778899", "SE", "Malmö"),
    SupplierProfile("SUP-FJORD", "Fjord Facility Services AS", "NOK", "NO987654321MVA",
                    "0192:987654321", "NO", "Bergen"),
)


@dataclass(frozen=True)
class World:
    base_currency: str
    fx_rates: dict[str, Decimal]  # 1 unit = x base currency
    auto_approve_below: Decimal
    people: tuple[Person, ...]
    cost_centers: tuple[CostCenter, ...]
    categories: tuple[str, ...]
    rule_categories: tuple[str, ...]
    tolerances: Tolerances
    suppliers: tuple[SupplierProfile, ...]
    policy_version: int | None = None
    tolerance_version: int | None = None

    def person(self, user_id: str) -> Person | None:
        return next((p for p in self.people if p.id == user_id), None)

    def to_base(self, amount: Decimal, currency: str) -> Decimal:
        if currency == self.base_currency:
            return amount
        return amount * self.fx_rates.get(currency, Decimal(1))

    @property
    def currencies(self) -> tuple[str, ...]:
        return (self.base_currency, *sorted(self.fx_rates))

    def chain_for(self, requester: str, cost_center: str, amount_base: Decimal,
                  categories: set[str]) -> list[str]:
        """The approvers the policy would route to (one per level; `all`-rules flattened).
        Used to plan realistic decisions; the approvals service is the authority."""
        if amount_base < self.auto_approve_below:
            return []
        cc = next((c for c in self.cost_centers if c.id == cost_center), None)
        chain: list[str] = []

        def substitute(user_id: str | None) -> str | None:
            seen = set()
            while user_id == requester and user_id not in seen:
                seen.add(user_id)
                person = self.person(user_id)
                user_id = person.manager if person else None
            return user_id

        current = substitute(cc.owner if cc else None)
        while current and current not in chain:
            chain.append(current)
            person = self.person(current)
            limit = person.approval_limit if person else None
            if person is None or limit is None or limit >= amount_base:
                break
            current = substitute(person.manager)
        for cat in self.rule_categories:
            if cat in categories:
                for approver in self._rule_approvers.get(cat, ()):
                    approver = substitute(approver)
                    if approver and approver not in chain:
                        chain.append(approver)
        return chain

    _rule_approvers: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _dec(value: Any, default: str) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(default)


def world_from_documents(policy: dict[str, Any], tolerances: dict[str, Any] | None = None, *,
                         suppliers: tuple[SupplierProfile, ...] = DEMO_SUPPLIERS,
                         policy_version: int | None = None,
                         tolerance_version: int | None = None) -> World:
    """Build the world from the approval policy and tolerance documents (as in §4.2 / §4.4)."""
    people = tuple(
        Person(id=str(u["id"]), name=str(u.get("name") or u["id"]), manager=u.get("manager"),
               approval_limit=(Decimal(str(u["approval_limit"]))
                               if u.get("approval_limit") is not None else None))
        for u in policy.get("users") or [])
    if not people:
        raise ValueError("the approval policy names no users")
    cost_centers = tuple(CostCenter(str(c["id"]), str(c.get("name") or c["id"]), str(c["owner"]))
                         for c in policy.get("cost_centers") or [])
    if not cost_centers:
        raise ValueError("the approval policy names no cost centers")
    rule_categories: list[str] = []
    rule_approvers: dict[str, tuple[str, ...]] = {}
    for rule in policy.get("rules") or []:
        cat = (rule.get("when") or {}).get("category")
        for c in ([cat] if isinstance(cat, str) else list(cat or [])):
            if c not in rule_categories:
                rule_categories.append(c)
                rule_approvers[c] = tuple(rule.get("approvers") or ())
    tol_doc = tolerances or {}
    tol_categories = [c for c in (tol_doc.get("categories") or {}) if c not in rule_categories]
    categories = tuple(dict.fromkeys([*rule_categories, *tol_categories, *COMMON_CATEGORIES]))
    base = str(policy.get("base_currency") or "EUR")
    fx = {str(k): Decimal(str(v)) for k, v in (policy.get("fx_rates") or {}).items()}
    known = {base, *fx}
    usable = tuple(s for s in suppliers if s.currency in known)
    world = World(
        base_currency=base,
        fx_rates=fx,
        auto_approve_below=_dec(policy.get("auto_approve_below"), "0"),
        people=people,
        cost_centers=cost_centers,
        categories=categories,
        rule_categories=tuple(rule_categories),
        tolerances=Tolerances(
            default=Tolerance().merged(tol_doc.get("default")),
            suppliers=dict(tol_doc.get("suppliers") or {}),
            categories=dict(tol_doc.get("categories") or {}),
        ),
        suppliers=usable or tuple(s for s in suppliers if s.currency == "EUR"),
        policy_version=policy_version,
        tolerance_version=tolerance_version,
        _rule_approvers=rule_approvers,
    )
    return world


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}
