"""Choose the parser by Content-Type and, for XML, by the root element; all yield `Invoice`."""

from __future__ import annotations

from services.invoices.domain import Invoice
from services.invoices.parsers.cii import RSM, parse_cii
from services.invoices.parsers.common import (
    IntakeError,
    Malformed,
    NotAnInvoice,
    TooLarge,
    UnsafeXml,
)
from services.invoices.parsers.facturx import embedded_xml
from services.invoices.parsers.native import SchemaInvalid, parse_native_json
from services.invoices.parsers.ubl import CREDIT_NOTE_NS, INVOICE_NS, parse_ubl
from services.invoices.parsers.xmlsafe import local_name, namespace, parse_xml

JSON_TYPES = ("application/json",)
XML_TYPES = ("application/xml", "text/xml")
PDF_TYPES = ("application/pdf",)
CSV_TYPES = ("text/csv", "application/csv")
DOCUMENT_TYPES = (*JSON_TYPES, *XML_TYPES, *PDF_TYPES)


class UnsupportedType(IntakeError):
    reason = "unsupported_media_type"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _from_xml(data: bytes, source_format: str | None = None) -> Invoice:
    root = parse_xml(data)
    ns, name = namespace(root), local_name(root)
    if (ns, name) in ((INVOICE_NS, "Invoice"), (CREDIT_NOTE_NS, "CreditNote")):
        inv = parse_ubl(root)
        if source_format:
            inv.source_format = source_format
        return inv
    if (ns, name) == (RSM, "CrossIndustryInvoice"):
        return parse_cii(root, source_format=source_format or "cii")
    raise NotAnInvoice(
        f"the root element {{{ns or ''}}}{name} is not a UBL 2.1 Invoice / CreditNote or a "
        "UN/CEFACT CrossIndustryInvoice", rule="P2P-ROOT")


def parse_document(data: bytes, content_type: str | None) -> Invoice:
    """Raises `UnsupportedType` (415), `Malformed`/`UnsafeXml` (400), `TooLarge` (413),
    `NotAnInvoice` and `SchemaInvalid` (422)."""
    mt = media_type(content_type)
    is_json = mt in JSON_TYPES or mt.endswith("+json")
    is_xml = mt in XML_TYPES or mt.endswith("+xml")
    if not (is_json or is_xml or mt in PDF_TYPES):
        raise UnsupportedType(
            f"Content-Type {mt or '(none)'!r} is not accepted here; send application/json, "
            "application/xml (UBL or CII), application/pdf (Factur-X), or text/csv to "
            "/invoices/batch")
    if not data.strip():
        raise Malformed("the body is empty")
    if is_json:
        return parse_native_json(data)
    if is_xml:
        return _from_xml(data)
    return _from_xml(embedded_xml(data), source_format="facturx")


__all__ = [
    "CSV_TYPES",
    "DOCUMENT_TYPES",
    "IntakeError",
    "Malformed",
    "NotAnInvoice",
    "SchemaInvalid",
    "TooLarge",
    "UnsafeXml",
    "UnsupportedType",
    "media_type",
    "parse_document",
]
