"""Tolerances over HTTP: versions, YAML/JSON, validation, what-if simulation, metrics."""

from __future__ import annotations

import pytest

from tests.integration.matching.conftest import (
    ADMIN,
    AUDITOR,
    CLERK,
    db_scalar,
    invoice,
    po_issued,
    receipt,
    wait_receipts,
    wait_status,
)
from tests.support.kafka import produce
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration

CANDIDATE = {"price_pct": "2", "price_abs": "5.00", "price_rule": "either",
             "qty_over_ordered_pct": "0", "qty_over_received_pct": "0", "total_abs": "1.00"}


def test_policy_versions_yaml_and_json_and_validation(matching):
    c = matching.client
    first = c.get("/tolerances", headers=AUDITOR).json()
    assert first["version"] == 1 and first["policy"]["suppliers"] == {"SUP-2": {"price_pct": "10"}}
    assert first["policy"]["receipt_wait"] == "PT60S"
    yaml_doc = ("default: {price_pct: '3', price_abs: '1.00', price_rule: both,\n"
                "  qty_over_ordered_pct: '0', qty_over_received_pct: '0', total_abs: '1.00'}\n"
                "categories: {HW: {price_abs: '0.50'}}\n")
    r = c.put("/tolerances", content=yaml_doc, headers={**ADMIN, "content-type": "application/yaml"})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert c.get("/tolerances", headers=CLERK).json()["policy"]["categories"] == {"HW": {"price_abs": "0.50"}}
    bad = c.put("/tolerances", json={"default": {**CANDIDATE, "price_abs": "-1"},
                                     "suppliers": {"S": {"nope": "1"}}}, headers=ADMIN)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert {(e["path"], e["rule"]) for e in bad.json()["errors"]} == {
        ("default.price_abs", "minimum"), ("suppliers.S.nope", "unknown_field")}
    assert c.put("/tolerances", content="default: [", headers={**ADMIN, "content-type": "application/yaml"}
                 ).status_code == 400
    assert c.put("/tolerances", content="{", headers={**ADMIN, "content-type": "application/json"}
                 ).status_code == 400
    assert c.put("/tolerances", content="x", headers={**ADMIN, "content-type": "text/plain"}
                 ).status_code == 415
    assert c.put("/tolerances", json={"default": CANDIDATE}, headers=CLERK).status_code == 403
    assert c.get("/tolerances", headers=CLERK).json()["version"] == 2  # nothing changed by the failures


def test_every_decision_records_its_policy_version(matching, matching_settings):
    s = matching_settings
    produce(s, po_issued("PO-900001"))
    produce(s, receipt("PO-900001", {1: "10"}))
    first = invoice("PO-900001", [("1", "1", "100.00")])
    produce(s, first)
    assert wait_status(matching, first.invoice_id, "cleared")["policy_version"] == 1
    assert matching.client.put("/tolerances", json={"default": CANDIDATE}, headers=ADMIN).json()["version"] == 2
    second = invoice("PO-900001", [("1", "1", "100.00")])
    produce(s, second)
    assert wait_status(matching, second.invoice_id, "cleared")["policy_version"] == 2


def test_simulate_replays_under_a_candidate_and_changes_nothing(matching, matching_settings):
    s, c = matching_settings, matching.client
    produce(s, po_issued("PO-910001"))
    produce(s, receipt("PO-910001", {1: "10"}))
    produce(s, po_issued("PO-910002", currency="USD", supplier_id="SUP-2"))
    produce(s, receipt("PO-910002", {1: "10"}))
    wait_receipts(s, "PO-910001")
    wait_receipts(s, "PO-910002")
    exact = invoice("PO-910001", [("1", "1", "100.00")])
    above = invoice("PO-910001", [("1", "2", "104.00")])  # +4.00 within 5.00 abs
    far = invoice("PO-910001", [("1", "1", "108.00")])  # +8.00 beyond
    usd = invoice("PO-910002", [("1", "3", "109.00")], currency="USD", supplier={"id": "SUP-2"})
    for inv, status in ((exact, "cleared"), (above, "cleared"), (far, "exception"), (usd, "cleared")):
        produce(s, inv)
        wait_status(matching, inv.invoice_id, status)
    decisions = db_scalar(s, "SELECT count(*) FROM match_decisions")

    strict = {"policy": {"default": {**CANDIDATE, "price_pct": "0", "price_abs": "0"}}}
    r = c.post("/tolerances/simulate", json=strict, headers=CLERK)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["invoices"] == 4
    assert out["current"] == {"version": 1, "touchless_rate": 0.75}
    assert out["candidate"] == {"touchless_rate": 0.25}
    assert sorted((ch["invoice_id"], ch["current"], ch["candidate"]) for ch in out["changed"]) == sorted([
        (above.invoice_id, "matched", "exception"), (usd.invoice_id, "matched", "exception")])
    assert out["accepted_variance"] == {"EUR": "0.00"}

    lenient = {"policy": {"default": {**CANDIDATE, "price_abs": "10.00"}}}
    out = c.post("/tolerances/simulate", json=lenient, headers=ADMIN).json()
    assert out["candidate"]["touchless_rate"] == 1.0
    assert [ch["invoice_id"] for ch in out["changed"]] == [far.invoice_id]
    assert out["accepted_variance"] == {"EUR": "16.00", "USD": "27.00"}  # 2×4 + 8; 3×9

    window = c.post("/tolerances/simulate", json={**lenient, "from": "2000-01-01T00:00:00Z",
                                                  "to": "2000-01-02T00:00:00Z"}, headers=CLERK).json()
    assert window["invoices"] == 0 and window["changed"] == []

    bad = c.post("/tolerances/simulate", json={"policy": {"default": {"price_pct": "x"}}}, headers=CLERK)
    assert bad.status_code == 422
    assert ("policy.default.price_pct", "decimal") in {(e["path"], e["rule"]) for e in bad.json()["errors"]}
    assert c.post("/tolerances/simulate", json=lenient, headers=AUDITOR).status_code == 403
    assert c.post("/tolerances/simulate", json={"policy": {"default": CANDIDATE}, "from": "nope"},
                  headers=CLERK).status_code == 422
    assert db_scalar(s, "SELECT count(*) FROM match_decisions") == decisions
    assert c.get("/tolerances", headers=CLERK).json()["version"] == 1

    metrics = c.get("/metrics").text
    assert 'p2p_match_outcomes_total{outcome="matched"}' in metrics
    assert 'p2p_match_outcomes_total{outcome="exception"}' in metrics
    assert "p2p_invoice_cycle_seconds_count" in metrics
    wait_until(lambda: 'p2p_exceptions_open{reason="PRICE_VARIANCE"} 1.0' in c.get("/metrics").text,
               10, message="open exceptions gauge refreshed")


def test_get_match_needs_a_known_invoice_and_a_reader(matching):
    c = matching.client
    for path in ("/matches/a%00b", "/exceptions/a%00b", "/exceptions?supplier_id=a%00b"):
        r = c.get(path, headers=CLERK)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    nul_key = c.put("/tolerances", json={"default": CANDIDATE, "categories": {"I\u0000T": {}}},
                    headers=ADMIN)
    assert nul_key.status_code == 422 and nul_key.json()["errors"][0]["rule"] == "control_character"
    assert c.get("/matches/unknown", headers=CLERK).status_code == 404
    assert c.get("/matches/unknown").status_code == 401
    assert c.get("/matches/unknown", headers={"Authorization": "Bearer x"}).status_code == 401
