"""Tolerance policy: validation of the YAML/JSON document and scope resolution.

Scopes, most specific last: `default` → `suppliers.<supplier id>` → `categories.<category>`.
A supplier override replaces the default's fields it names; a category override replaces
both. Header limits (`total_abs`) resolve default → supplier (a header has no category).
Pure: no infrastructure imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import isodate

DECIMAL_FIELDS = ("price_pct", "price_abs", "qty_over_ordered_pct", "qty_over_received_pct",
                  "total_abs")
TOLERANCE_FIELDS = DECIMAL_FIELDS + ("price_rule",)
PRICE_RULES = ("either", "both")
TOP_LEVEL = ("default", "suppliers", "categories", "receipt_wait", "po_wait")
DEFAULT_RECEIPT_WAIT = timedelta(days=5)
DEFAULT_PO_WAIT = timedelta(hours=1)


class PolicyError(ValueError):
    """The document is invalid; `errors` are (path, rule, message) triples."""

    def __init__(self, errors: list[tuple[str, str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, _, m in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Tolerance:
    price_pct: Decimal
    price_abs: Decimal
    price_rule: str
    qty_over_ordered_pct: Decimal
    qty_over_received_pct: Decimal
    total_abs: Decimal

    def merged(self, overrides: dict[str, Any]) -> Tolerance:
        if not overrides:
            return self
        values = {name: getattr(self, name) for name in TOLERANCE_FIELDS}
        values.update(overrides)
        return Tolerance(**values)


@dataclass(frozen=True)
class TolerancePolicy:
    default: Tolerance
    suppliers: dict[str, dict[str, Any]]
    categories: dict[str, dict[str, Any]]
    receipt_wait: timedelta
    po_wait: timedelta
    document: dict[str, Any]  # the normalised document (decimals as strings)
    _cache: dict[tuple[str | None, str | None], Tolerance] = field(
        default_factory=dict, compare=False, repr=False)

    def for_line(self, supplier_id: str | None, category: str | None) -> Tolerance:
        key = (supplier_id, category)
        found = self._cache.get(key)
        if found is None:
            found = self.default.merged(self.suppliers.get(supplier_id or "", {}))
            found = found.merged(self.categories.get(category or "", {}))
            self._cache[key] = found
        return found

    def for_header(self, supplier_id: str | None) -> Tolerance:
        return self.for_line(supplier_id, None)


def _decimal(value: Any, path: str, errors: list[tuple[str, str, str]]) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        errors.append((path, "decimal", "must be a decimal number as a string, e.g. \"2.5\""))
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        errors.append((path, "decimal", f"{value!r} is not a decimal number"))
        return None
    if not d.is_finite():
        errors.append((path, "decimal", "must be finite"))
        return None
    if d < 0:
        errors.append((path, "minimum", "must be zero or more"))
        return None
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        errors.append((path, "precision", "at most 6 decimal places"))
        return None
    if d > Decimal(1000000000):
        errors.append((path, "maximum", "must be at most 1000000000"))
        return None
    return d


def _duration(value: Any, path: str, errors: list[tuple[str, str, str]]) -> timedelta | None:
    if not isinstance(value, str):
        errors.append((path, "duration", "must be an ISO 8601 duration string, e.g. P5D or PT1H"))
        return None
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        errors.append((path, "duration", f"{value!r} is not an ISO 8601 duration"))
        return None
    if not isinstance(parsed, timedelta):
        errors.append((path, "duration", "use days, hours, minutes or seconds (no months/years)"))
        return None
    if parsed <= timedelta(0):
        errors.append((path, "minimum", "must be longer than zero"))
        return None
    return parsed


def _tolerance_fields(doc: Any, path: str, errors: list[tuple[str, str, str]], *,
                      complete: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(typed values, normalised document) of one scope."""
    if not isinstance(doc, dict):
        errors.append((path, "type", "must be a mapping of tolerance fields"))
        return {}, {}
    typed: dict[str, Any] = {}
    normal: dict[str, Any] = {}
    for key in doc:
        if key not in TOLERANCE_FIELDS:
            errors.append((f"{path}.{key}", "unknown_field",
                           f"unknown field; allowed: {', '.join(TOLERANCE_FIELDS)}"))
    for name in DECIMAL_FIELDS:
        if name in doc:
            d = _decimal(doc[name], f"{path}.{name}", errors)
            if d is not None:
                typed[name] = d
                normal[name] = str(d)
        elif complete:
            errors.append((f"{path}.{name}", "required", "is required in the default scope"))
    if "price_rule" in doc:
        if doc["price_rule"] in PRICE_RULES:
            typed["price_rule"] = normal["price_rule"] = doc["price_rule"]
        else:
            errors.append((f"{path}.price_rule", "enum", "must be 'either' or 'both'"))
    elif complete:
        errors.append((f"{path}.price_rule", "required", "is required in the default scope"))
    return typed, normal


def _scopes(doc: Any, path: str, errors: list[tuple[str, str, str]]
            ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    if doc is None:
        return {}, {}
    if not isinstance(doc, dict):
        errors.append((path, "type", "must be a mapping of id to tolerance overrides"))
        return {}, {}
    typed: dict[str, dict[str, Any]] = {}
    normal: dict[str, Any] = {}
    for key, value in doc.items():
        if not isinstance(key, str) or not key.strip():
            errors.append((f"{path}.{key}", "type", "scope keys must be non-empty strings"))
            continue
        t, n = _tolerance_fields(value, f"{path}.{key}", errors, complete=False)
        typed[key], normal[key] = t, n
    return typed, normal


def _unsafe(text: str) -> bool:
    """Control characters (PostgreSQL cannot store NUL) or lone surrogates (not Unicode)."""
    return any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _shown(text: str) -> str:
    """`text` safe to echo in an error path."""
    return "".join("\ufffd" if ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF
                   else ch for ch in text)


def _unsafe_text(value: Any, path: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    if isinstance(value, str):
        if _unsafe(value):
            found.append((path, "control_character",
                          "text must not contain control characters or lone surrogates"))
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{_shown(str(key))}" if path else _shown(str(key))
            if isinstance(key, str) and _unsafe(key):
                found.append((where, "control_character",
                              "keys must not contain control characters or lone surrogates"))
            found += _unsafe_text(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _unsafe_text(item, f"{path}[{i}]")
    return found


def parse_policy(doc: Any) -> TolerancePolicy:
    """Validate a policy document; raises `PolicyError` listing every problem with its path."""
    errors: list[tuple[str, str, str]] = []
    if not isinstance(doc, dict):
        raise PolicyError([("", "type", "the policy must be a mapping (YAML or JSON object)")])
    unsafe = _unsafe_text(doc, "")
    if unsafe:
        raise PolicyError(unsafe)
    for key in doc:
        if key not in TOP_LEVEL:
            errors.append((str(key), "unknown_field", f"unknown field; allowed: {', '.join(TOP_LEVEL)}"))
    if "default" not in doc:
        errors.append(("default", "required", "the default scope is required"))
        default_typed: dict[str, Any] = {}
        default_normal: dict[str, Any] = {}
    else:
        default_typed, default_normal = _tolerance_fields(doc["default"], "default", errors,
                                                          complete=True)
    suppliers, suppliers_normal = _scopes(doc.get("suppliers"), "suppliers", errors)
    categories, categories_normal = _scopes(doc.get("categories"), "categories", errors)
    receipt_wait = DEFAULT_RECEIPT_WAIT
    po_wait = DEFAULT_PO_WAIT
    if "receipt_wait" in doc:
        receipt_wait = _duration(doc["receipt_wait"], "receipt_wait", errors) or receipt_wait
    if "po_wait" in doc:
        po_wait = _duration(doc["po_wait"], "po_wait", errors) or po_wait
    if errors:
        raise PolicyError(errors)
    normal = {
        "default": default_normal,
        "suppliers": suppliers_normal,
        "categories": categories_normal,
        "receipt_wait": doc.get("receipt_wait", isodate.duration_isoformat(receipt_wait)),
        "po_wait": doc.get("po_wait", isodate.duration_isoformat(po_wait)),
    }
    return TolerancePolicy(default=Tolerance(**default_typed), suppliers=suppliers,
                           categories=categories, receipt_wait=receipt_wait, po_wait=po_wait,
                           document=normal)
