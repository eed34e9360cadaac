"""The approval policy and org directory document (§4.2): schema and referential checks.

Pure code like domain.py: a document (parsed from YAML or JSON) in, a frozen `Policy` or a
`PolicyInvalid` naming every offending path out.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import isodate
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

POLICY_ACTOR = "policy"  # reserved: who decides what the policy decides on its own
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Field validators raise ValueError: pydantic reports those (not TypeError) as field errors.

def _positive_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError("must be a decimal string, not a float")  # noqa: TRY004
    try:
        d = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError("must be a decimal number") from exc
    if not d.is_finite() or d < 0:
        raise ValueError("must be a non-negative decimal")
    return d


def _duration(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration string such as PT24H")  # noqa: TRY004
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError("must be an ISO 8601 duration such as PT24H or P2D") from exc
    if not isinstance(parsed, timedelta) or parsed <= timedelta(0):
        raise ValueError("must be a positive duration in days, hours, minutes or seconds")
    return value


class Sla(_Doc):
    reminder_after: str = "PT24H"
    escalate_after: str = "PT48H"

    _check = field_validator("reminder_after", "escalate_after", mode="before")(_duration)

    @property
    def reminder(self) -> timedelta:
        return isodate.parse_duration(self.reminder_after)

    @property
    def escalation(self) -> timedelta:
        return isodate.parse_duration(self.escalate_after)


class User(_Doc):
    id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1)
    manager: str | None = None
    approval_limit: Decimal | None = None  # None = unlimited
    email: str | None = None

    _limit = field_validator("approval_limit", mode="before")(
        lambda v: None if v is None else _positive_decimal(v))


class CostCenter(_Doc):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    owner: str


class RuleCondition(_Doc):
    category: str | list[str] | None = None
    min_amount: Decimal | None = None  # base currency, inclusive
    max_amount: Decimal | None = None  # base currency, exclusive
    cost_center: str | list[str] | None = None

    _amounts = field_validator("min_amount", "max_amount", mode="before")(
        lambda v: None if v is None else _positive_decimal(v))

    def matches(self, categories: frozenset[str], amount_base: Decimal, cost_center: str) -> bool:
        if self.category is not None:
            wanted = {self.category} if isinstance(self.category, str) else set(self.category)
            if not wanted & categories:
                return False
        if self.cost_center is not None:
            wanted = {self.cost_center} if isinstance(self.cost_center, str) else set(self.cost_center)
            if cost_center not in wanted:
                return False
        if self.min_amount is not None and amount_base < self.min_amount:
            return False
        return self.max_amount is None or amount_base < self.max_amount


class Rule(_Doc):
    name: str = Field(min_length=1)
    when: RuleCondition = Field(default_factory=RuleCondition)
    approvers: list[str] = Field(min_length=1)
    mode: Literal["all", "any"] = "all"


class Policy(_Doc):
    base_currency: str
    fx_rates: dict[str, Decimal] = Field(default_factory=dict)  # 1 unit = x base
    auto_approve_below: Decimal = Decimal(0)
    sla: Sla = Field(default_factory=Sla)
    users: list[User] = Field(min_length=1)
    cost_centers: list[CostCenter] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    _base = field_validator("base_currency")(lambda v: _currency_code(v))
    _threshold = field_validator("auto_approve_below", mode="before")(_positive_decimal)

    @field_validator("fx_rates", mode="before")
    @classmethod
    def _rates(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for code, rate in value.items():
            _currency_code(code)
            d = _positive_decimal(rate)
            if d == 0:
                raise ValueError(f"the rate of {code} must be positive")
            out[code] = d
        return out

    # Lookups (built on demand; the model is frozen, so cache by identity is not needed).
    def user(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def managers(self) -> dict[str, str]:
        return {u.id: u.manager for u in self.users if u.manager}

    def cost_center(self, cc_id: str) -> CostCenter | None:
        return next((c for c in self.cost_centers if c.id == cc_id), None)

    def rate(self, currency: str) -> Decimal | None:
        """Units of base currency per unit of `currency`; None when the policy has no rate."""
        return Decimal(1) if currency == self.base_currency else self.fx_rates.get(currency)

    def document(self) -> dict[str, Any]:
        """The document as stored and served: decimals as strings, no defaults invented."""
        return self.model_dump(mode="json", exclude_none=True)


def _currency_code(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise ValueError("must be an ISO 4217 code (three upper-case letters)")
    return value


class PolicyInvalid(ValueError):
    """The policy document breaks the schema or the org rules; `errors` name the paths."""

    def __init__(self, errors: list[tuple[str, str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, _, m in errors))
        self.errors = errors


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "$"


def text_problem(value: str, *, allow_newlines: bool = True) -> bool:
    """True for text PostgreSQL, JSON responses or logs must never see: NUL and other control
    characters, and lone surrogates (valid JSON escapes, not Unicode)."""
    allowed = "\t\n\r" if allow_newlines else ""
    return any((ord(ch) < 32 and ch not in allowed) or 0xD800 <= ord(ch) <= 0xDFFF
               for ch in value)


def _bad_text(value: Any, loc: tuple[Any, ...]):
    """Locations of strings (keys or values) with `text_problem`s; the path never echoes them."""
    if isinstance(value, str):
        if text_problem(value):
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and text_problem(key, allow_newlines=False):
                yield (*loc, "<invalid key>")
                continue
            yield from _bad_text(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _bad_text(item, (*loc, i))


def parse_policy(document: Any) -> Policy:
    """Validate a policy document (already parsed from YAML/JSON). Raises PolicyInvalid."""
    if not isinstance(document, dict):
        raise PolicyInvalid([("$", "type", "the policy must be a mapping")])
    bad = list(_bad_text(document, ()))
    if bad:
        raise PolicyInvalid([(_path(loc), "invalid_text",
                              "text must be valid Unicode without NUL or control characters")
                             for loc in bad])
    try:
        policy = Policy.model_validate(document)
    except ValidationError as exc:
        raise PolicyInvalid([
            (_path(e["loc"]), e["type"], e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]) from exc
    errors = org_errors(policy)
    if errors:
        raise PolicyInvalid(errors)
    return policy


def org_errors(policy: Policy) -> list[tuple[str, str, str]]:
    """Referential checks: unique ids, known users, no manager cycles."""
    errors: list[tuple[str, str, str]] = []
    ids: dict[str, int] = {}
    for i, u in enumerate(policy.users):
        if u.id == POLICY_ACTOR:
            errors.append((f"users[{i}].id", "reserved", f"'{POLICY_ACTOR}' is reserved"))
        if u.id in ids:
            errors.append((f"users[{i}].id", "duplicate", f"user {u.id} is defined twice"))
        ids.setdefault(u.id, i)
    for i, u in enumerate(policy.users):
        if u.manager is not None and u.manager not in ids:
            errors.append((f"users[{i}].manager", "unknown_user", f"unknown user {u.manager}"))
        if u.manager == u.id:
            errors.append((f"users[{i}].manager", "manager_cycle", f"{u.id} manages themself"))
    managers = policy.managers()
    reported: set[str] = set()
    for i, u in enumerate(policy.users):
        seen = [u.id]
        current = managers.get(u.id)
        while current is not None and current in ids:
            if current in seen:
                cycle = seen[seen.index(current):] + [current]
                if not reported & set(cycle) and len(cycle) > 2:
                    errors.append((f"users[{i}].manager", "manager_cycle",
                                   "manager cycle: " + " -> ".join(cycle)))
                reported.update(cycle)
                break
            seen.append(current)
            current = managers.get(current)
    cc_ids: set[str] = set()
    for i, cc in enumerate(policy.cost_centers):
        if cc.id in cc_ids:
            errors.append((f"cost_centers[{i}].id", "duplicate", f"cost center {cc.id} is defined twice"))
        cc_ids.add(cc.id)
        if cc.owner not in ids:
            errors.append((f"cost_centers[{i}].owner", "unknown_user", f"unknown user {cc.owner}"))
    for i, rule in enumerate(policy.rules):
        for j, a in enumerate(rule.approvers):
            if a not in ids:
                errors.append((f"rules[{i}].approvers[{j}]", "unknown_user", f"unknown user {a}"))
    return errors
