"""Factur-X / ZUGFeRD: a PDF carrying the invoice as an embedded CII XML file.

The XML is taken from the PDF's embedded files (`factur-x.xml`, `zugferd-invoice.xml`,
`ZUGFeRD-invoice.xml`, `xrechnung.xml`, else any other `.xml` attachment) with pypdf, then parsed
by the same safe XML reader and CII parser as a CII document. A PDF without one → 422.
"""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader

from services.invoices.parsers.common import Malformed, NotAnInvoice, TooLarge

MAX_EMBEDDED_XML = 10 * 1024 * 1024  # pypdf itself stops decompressing at 75 MB
KNOWN_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "ZUGFeRD-invoice.xml", "xrechnung.xml")

logging.getLogger("pypdf").setLevel(logging.ERROR)


def embedded_xml(data: bytes) -> bytes:
    """The embedded invoice XML of a Factur-X / ZUGFeRD PDF."""
    if not data.lstrip()[:5] == b"%PDF-":
        raise Malformed("the body is not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        attachments = reader.attachments
        names = list(attachments.keys())
    except Exception as exc:  # pypdf raises many types on broken files, all mean "unreadable"
        raise Malformed(f"the PDF cannot be read: {type(exc).__name__}: {exc}"[:300]) from exc
    chosen = next((n for n in KNOWN_NAMES if n in attachments), None)
    if chosen is None:
        chosen = next((n for n in names if n.lower().endswith(".xml")), None)
    if chosen is None:
        raise NotAnInvoice(
            "the PDF has no embedded Factur-X / ZUGFeRD invoice XML (expected an attachment "
            "named factur-x.xml or zugferd-invoice.xml)", rule="P2P-FACTURX-XML")
    try:
        content = attachments[chosen]
    except Exception as exc:
        raise Malformed(f"the embedded {chosen} cannot be read: {exc}"[:300]) from exc
    if isinstance(content, list):
        content = content[0] if content else b""
    if len(content) > MAX_EMBEDDED_XML:
        raise TooLarge(f"the embedded {chosen} is larger than {MAX_EMBEDDED_XML} bytes")
    return bytes(content)
