"""What every parser shares: its errors and lenient readers that record issues instead of failing."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from services.invoices.domain import Invoice, Issue


class IntakeError(ValueError):
    """A document that cannot be read; `reason` is the metrics label."""

    reason = "malformed"


class Malformed(IntakeError):
    """Not well-formed XML / JSON / CSV / PDF → 400."""


class UnsafeXml(Malformed):
    """A DTD, entity declaration or other construct we refuse to process → 400."""

    reason = "unsafe_xml"


class TooLarge(IntakeError):
    """A part that unpacks to more than we accept (e.g. the XML inside a PDF) → 413."""

    reason = "too_large"


class NotAnInvoice(IntakeError):
    """Well-formed, but not a document we know (wrong root, a PDF with no invoice) → 422."""

    reason = "not_an_invoice"

    def __init__(self, message: str, *, rule: str = "P2P-DOCUMENT", path: str = "/") -> None:
        super().__init__(message)
        self.rule = rule
        self.path = path


_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
MAX_DIGITS = 24  # digits before + after the point; keeps arithmetic exact and bounded


def read_decimal(inv: Invoice, field: str, text: str | None, *, rule: str = "P2P-FORMAT-DECIMAL",
                 ) -> Decimal | None:
    """A decimal (XSD `decimal` syntax) or None when absent; bad syntax becomes an issue."""
    if text is None:
        return None
    raw = text.strip()
    if not raw:
        return None
    if not _DECIMAL.match(raw) or len(raw.lstrip("+-").replace(".", "")) > MAX_DIGITS:
        inv.parse_issues.append(Issue(field, rule, f"{raw[:40]!r} is not a decimal number",
                                      inv.source_paths.get(field)))
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:  # the pattern above makes this unreachable in practice
        inv.parse_issues.append(Issue(field, rule, f"{raw[:40]!r} is not a decimal number",
                                      inv.source_paths.get(field)))
        return None


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BASIC_DATE = re.compile(r"^\d{8}$")


def read_date(inv: Invoice, field: str, text: str | None, *, basic: bool = False,
              rule: str = "P2P-FORMAT-DATE") -> date | None:
    """`YYYY-MM-DD` (or `YYYYMMDD`, CII format 102, when `basic`); bad dates become issues."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        if basic and _BASIC_DATE.match(raw):
            return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
        if not basic and _ISO_DATE.match(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    expected = "YYYYMMDD" if basic else "YYYY-MM-DD"
    inv.parse_issues.append(Issue(field, rule, f"{raw[:40]!r} is not a valid date ({expected})",
                                  inv.source_paths.get(field)))
    return None


def clean(text: str | None) -> str | None:
    """Stripped text, or None when absent or blank."""
    if text is None:
        return None
    stripped = text.strip()
    return stripped or None


def scheme_value(scheme: str | None, value: str | None) -> str | None:
    value = clean(value)
    if value is None:
        return None
    scheme = clean(scheme)
    return f"{scheme}:{value}" if scheme else value
