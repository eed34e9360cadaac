"""Exact duplicates (409, unique constraint, concurrent posts) and suspected ones (flagged)."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import text

from tests.integration.invoices.conftest import post
from tests.support.poll import wait_until
from tests.support.stack import service_engine
from tests.unit.invoices.documents import edit_ubl, make_cii, native

pytestmark = pytest.mark.integration


def stored(svc, number_norm: str) -> int:
    engine = service_engine(svc.settings, "invoices")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM invoices WHERE number_norm = :n"),
                                {"n": number_norm}).scalar_one()
    finally:
        engine.dispose()


def test_number_variants_of_one_supplier_are_exact_duplicates(invoices, clerk):
    supplier = {"id": "SUP-DUP", "name": "Dup Ltd"}
    first = post(invoices, json.dumps(native("INV-001", supplier=supplier)), "application/json",
                 clerk)
    assert first.status_code == 201
    for variant in ("inv 001", "INV001", "Inv.0001"):
        resp = post(invoices, json.dumps(native(variant, supplier=supplier)), "application/json",
                    clerk)
        assert resp.status_code == 409, variant
        assert resp.json()["existing_id"] == first.json()["id"]
        assert resp.headers["content-type"] == "application/problem+json"
    # Same number, other supplier or other type: not a duplicate.
    other = post(invoices, json.dumps(native("INV-001", supplier={"id": "SUP-OTHER"})),
                 "application/json", clerk)
    assert other.status_code == 201
    credit = post(invoices, json.dumps(native("INV-001", supplier=supplier, type_="credit_note")),
                  "application/json", clerk)
    assert credit.status_code == 201
    assert stored(invoices, "INV1") == 3


def test_one_invoice_sent_over_two_channels_is_a_duplicate(invoices, clerk):
    """The same supplier (by VAT id) and number as CII XML, then as native JSON."""
    resp = post(invoices, make_cii("RE-2026-77", vat_id="DE777"), "application/xml", clerk)
    assert resp.status_code == 201
    again = post(invoices, json.dumps(native("re 2026/77", supplier={"vat_id": "de 777"})),
                 "application/json", clerk)
    assert again.status_code == 409
    assert again.json()["existing_id"] == resp.json()["id"]


def test_a_similar_number_same_gross_within_a_week_is_accepted_and_flagged(invoices, clerk):
    supplier = {"id": "SUP-SUS"}
    first = post(invoices, json.dumps(native("INV-2026-1001", supplier=supplier,
                                             issue_date="2026-11-02")), "application/json", clerk)
    assert first.status_code == 201
    second = post(invoices, json.dumps(native("INV-2026-1007", supplier=supplier,
                                              issue_date="2026-11-06")), "application/json", clerk)
    assert second.status_code == 201
    assert second.json()["flags"] == ["suspected_duplicate"]
    assert second.json()["duplicate_of"] == first.json()["id"]
    got = invoices.client.get(f"/invoices/{second.json()['id']}", headers=clerk).json()
    assert got["flags"] == ["suspected_duplicate"]
    # Other gross, or more than 7 days apart, or a different number: not suspected.
    for number, gross, day in (("INV-2026-1008", "2380.00", "2026-11-06"),
                               ("INV-2026-1009", "1190.00", "2026-11-20"),
                               ("ZX-77", "1190.00", "2026-11-03")):
        resp = post(invoices, json.dumps(native(number, supplier=supplier, gross=gross,
                                                issue_date=day)), "application/json", clerk)
        assert resp.status_code == 201
        assert resp.json()["flags"] == [], number


def test_the_same_invoice_posted_concurrently_is_stored_once(invoices, peppol_dir, clerk):
    results: list[int] = []
    for round_ in range(3):  # a few rounds: the race window is small
        xml = edit_ubl(peppol_dir / "base-example.xml", {}, number=f"RACE-{round_}")
        barrier = threading.Barrier(2)

        def submit(body: bytes = xml, gate: threading.Barrier = barrier) -> None:
            gate.wait()
            results.append(post(invoices, body, "application/xml", clerk).status_code)

        threads = [threading.Thread(target=submit) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert stored(invoices, f"RACE{round_}") == 1
    assert sorted(results) == [201, 201, 201, 409, 409, 409]


def test_a_second_transaction_waits_on_the_unique_key_then_finds_the_first(invoices,
                                                                            peppol_dir):
    """The race, step by step: both passed the duplicate look-up; the key constraint decides."""
    from services.invoices.handlers import DuplicateInvoice, receive_invoice
    from services.invoices.parsers import parse_document

    xml = edit_ubl(peppol_dir / "vat-category-O.xml", {}, number="LOCKSTEP-1")
    runtime = invoices.runtime
    first = runtime.db.session()
    first.begin()
    received = receive_invoice(first, runtime.outbox, parse_document(xml, "application/xml"),
                               content_type="application/xml", original=xml)
    outcome: dict[str, str] = {}

    def second() -> None:
        # The caller keeps its transaction and commits: a refused invoice leaves nothing behind.
        with runtime.db.session() as session, session.begin():
            try:
                receive_invoice(session, runtime.outbox, parse_document(xml, "application/xml"),
                                content_type="application/xml", original=xml)
                outcome["result"] = "stored"
            except DuplicateInvoice as exc:
                outcome["result"] = exc.existing_id

    thread = threading.Thread(target=second)
    thread.start()
    engine = service_engine(invoices.settings, "invoices")
    try:
        def waiting_on_a_lock() -> bool:
            with engine.connect() as conn:
                return conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")).scalar_one() >= 1
        wait_until(waiting_on_a_lock, message="the second insert to wait on the key")
    finally:
        engine.dispose()
    first.commit()
    first.close()
    thread.join(15)
    assert outcome == {"result": received.id}
    assert stored(invoices, "LOCKSTEP1") == 1
