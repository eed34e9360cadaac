"""XXE, external DTDs and entity-expansion bombs are refused before anything is resolved."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from services.invoices.parsers import Malformed, UnsafeXml, parse_document

UBL = 'xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"'

ATTACKS = {
    "xxe-file": f"""<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Invoice {UBL}><ID>&xxe;</ID></Invoice>""",
    "xxe-network": f"""<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "http://127.0.0.1:1/steal">]>
<Invoice {UBL}><ID>&xxe;</ID></Invoice>""",
    "external-dtd": f"""<?xml version="1.0"?>
<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:1/evil.dtd">
<Invoice {UBL}><ID>1</ID></Invoice>""",
    "parameter-entity": f"""<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>
<Invoice {UBL}/>""",
    "billion-laughs": f"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Invoice {UBL}><ID>&lol9;</ID></Invoice>""",
}


@pytest.mark.parametrize("name", ATTACKS)
def test_documents_with_a_dtd_are_refused_unparsed(name):
    with pytest.raises(UnsafeXml):
        parse_document(ATTACKS[name].encode(), "application/xml")


def test_a_dtd_hidden_in_utf16_is_refused_too():
    with pytest.raises(UnsafeXml):
        parse_document(ATTACKS["xxe-file"].replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
                       .encode("utf-16"), "application/xml")


def test_a_dtd_inside_a_factur_x_pdf_is_refused():
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_attachment("factur-x.xml", ATTACKS["billion-laughs"].encode())
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(UnsafeXml):
        parse_document(out.getvalue(), "application/pdf")


@pytest.mark.parametrize("body", [b"<Invoice", b"<a></b>", b"not xml at all", b"<?xml?>"])
def test_malformed_xml_is_malformed(body):
    with pytest.raises(Malformed):
        parse_document(body, "application/xml")
