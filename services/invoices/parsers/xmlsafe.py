"""XML parsing that resolves nothing: no DTDs, no entities, no network, no huge trees.

A document carrying a DTD (`<!DOCTYPE`) or an entity declaration is refused before the parser
sees it, so XXE, external DTDs and entity-expansion bombs ("billion laughs") never expand. The
parser itself is configured defensively too, as a second line.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from services.invoices.parsers.common import Malformed, UnsafeXml

_FORBIDDEN = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _as_text(data: bytes) -> str:
    """Enough of a decoding to look for markup declarations in any encoding XML allows."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace")
    if data[:2] == b"<\x00":
        return data.decode("utf-16-le", errors="replace")
    if data[:2] == b"\x00<":
        return data.decode("utf-16-be", errors="replace")
    # Every other encoding an XML declaration may name is ASCII-compatible for "<!DOCTYPE".
    return data.decode("latin-1")


def parse_xml(data: bytes) -> etree._Element:
    if _FORBIDDEN.search(_as_text(data)):
        raise UnsafeXml("XML with a DTD or entity declarations is refused (XXE / entity expansion)")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise Malformed(f"the body is not well-formed XML: {exc}") from exc
    if root is None:
        raise Malformed("the body is not well-formed XML: no root element")
    if root.getroottree().docinfo.doctype:
        raise UnsafeXml("XML with a DTD is refused")
    return root


def local_name(el: etree._Element) -> str:
    return etree.QName(el).localname


def namespace(el: etree._Element) -> str | None:
    return etree.QName(el).namespace
