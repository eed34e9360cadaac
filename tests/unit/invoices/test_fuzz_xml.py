"""Hypothesis on mutated PEPPOL / CII documents: the intake pipeline answers every one with a
result or a documented refusal, never with an unexpected exception (which would be a 500)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from services.invoices.parsers import IntakeError, SchemaInvalid, parse_document
from services.invoices.validation import validate
from shared.contracts.invoices import InvoiceReceived
from tests.conftest import PEPPOL_DIR
from tests.unit.invoices.documents import make_cii

SOURCES = [p.read_bytes() for p in sorted(PEPPOL_DIR.glob("*.xml"))] + [make_cii()]
texts = st.one_of(st.sampled_from(["", " ", "0", "-1", "1e5", "NaN", "abc", "2017-13-45",
                                   "99999999999999999999999999", "0.0000000001", "EUR", "XXX",
                                   "true", "380", "381", "C62", "\u00e9\u00e8", "1.5.5"]),
                  st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                          max_size=12))


@st.composite
def mutated(draw):
    root = etree.fromstring(draw(st.sampled_from(SOURCES)))
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    for _ in range(draw(st.integers(1, 5))):
        el = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["text", "remove", "attr", "duplicate"]))
        if action == "text":
            el.text = draw(texts)
        elif action == "remove" and el.getparent() is not None:
            el.getparent().remove(el)
            elements = [e for e in root.iter() if isinstance(e.tag, str)]
        elif action == "attr":
            el.set(draw(st.sampled_from(["currencyID", "unitCode", "schemeID", "format"])),
                   draw(texts))
        elif action == "duplicate" and el.getparent() is not None:
            el.addnext(etree.fromstring(etree.tostring(el)))
    return etree.tostring(root)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(xml=mutated())
def test_mutated_documents_are_answered_without_crashing(xml):
    try:
        inv = parse_document(xml, "application/xml")
    except (IntakeError, SchemaInvalid):
        return
    issues = validate(inv)
    if issues:
        assert all(i.rule and i.message for i in issues)
        return
    InvoiceReceived.model_validate({**inv.to_payload(), "invoice_id": "x",
                                    "source_format": inv.source_format,
                                    "received_at": datetime.now(UTC)})
