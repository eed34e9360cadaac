"""Requisitions over HTTP: create, edit, submit (event), cancel (event), read, list, refusals."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.integration.requisitions.conftest import (
    ADMIN,
    ALICE,
    APPROVER,
    AUDITOR,
    BOB,
    RECEIVER,
    assert_problem,
    requisition_body,
    unchanged,
)
from tests.support.auth import bearer
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration


def test_submit_emits_requisition_submitted_with_cloudevents_headers(ctx) -> None:
    req = ctx.create(justification="new hires")
    assert req["status"] == "draft" and req["total"] == "3055.98" and req["submission"] == 0
    reader = ctx.reader("p2p.requisitions")
    try:
        submitted = ctx.submit(req["id"])
        assert submitted["status"] == "pending_approval" and submitted["submission"] == 1
        found = wait_until(lambda: [e for e in reader.envelopes() if e.subject == req["id"]],
                           message="requisition.submitted on p2p.requisitions")
        record = next(r for r in reader.records if r.key == req["id"].encode())
    finally:
        reader.close()
    assert len(found) == 1
    env = found[0]
    headers = dict(record.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"p2p.requisition.submitted.v1"
    assert headers["ce_source"] == b"/p2p/requisitions"
    assert headers["ce_subject"] == req["id"].encode()
    assert headers["content-type"] == b"application/json"
    assert headers["ce_correlationid"] == req["id"].encode()
    uuid.UUID(headers["ce_id"].decode())
    assert b"T" in headers["ce_time"]
    data = env.data
    assert data["requisition_id"] == req["id"] and data["submission"] == 1
    assert data["requester"] == "alice" and data["cost_center"] == "CC-100"
    assert data["currency"] == "EUR" and data["total"] == "3055.98"
    assert data["justification"] == "new hires" and data["needed_by"] == "2026-12-31"
    assert [(ln["line_no"], ln["category"], ln["amount"], ln["supplier_id"]) for ln in data["lines"]] == [
        (1, "IT", "2401.00", "SUP-ACME"), (2, "IT", "399.98", "SUP-ACME"),
        (3, "Services", "255.00", "SUP-GLOBEX")]
    assert data["lines"][2]["receipt_required"] is False and data["lines"][2]["uom"] == "HUR"
    assert isinstance(data["lines"][0]["quantity"], str)  # decimals travel as strings
    history = ctx.get(req["id"])["history"]
    assert [(h["action"], h["from_status"], h["to_status"]) for h in history] == [
        ("created", None, "draft"), ("submitted", "draft", "pending_approval")]


def test_patch_edits_a_draft_and_lines_replace_all(ctx) -> None:
    req = ctx.create()
    r = ctx.client.patch(f"/requisitions/{req['id']}", headers=ALICE, json={
        "title": "Just one laptop",
        "lines": [{"description": "Laptop", "quantity": "1", "unit_price": "999.999",
                   "supplier_id": "SUP-ACME"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == "Just one laptop" and body["total"] == "1000.00"
    assert [ln["line_no"] for ln in body["lines"]] == [1] and body["lines"][0]["uom"] == "EA"
    assert body["lines"][0]["receipt_required"] is True
    assert body["history"][-1]["action"] == "updated"
    assert body["history"][-1]["detail"]["fields"] == ["title", "lines"]
    assert body["history"][-1]["detail"]["total"] == {"from": "3055.98", "to": "1000.00"}
    assert ctx.scalar("SELECT count(*) FROM requisition_lines WHERE requisition_id = :i",
                      i=req["id"]) == 1
    assert ctx.scalar("SELECT total FROM requisitions WHERE id = :i", i=req["id"]) == Decimal("1000.00")


def test_cancel_emits_requisition_cancelled(ctx) -> None:
    req = ctx.create()
    ctx.submit(req["id"])
    r = ctx.client.post(f"/requisitions/{req['id']}/cancel", json={"reason": "budget freeze"},
                        headers=ALICE)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    reader = ctx.reader("p2p.requisitions")
    try:
        found = wait_until(lambda: [e for e in reader.envelopes() if e.subject == req["id"]
                                    and e.type == "p2p.requisition.cancelled.v1"],
                           message="requisition.cancelled")
    finally:
        reader.close()
    assert found[0].data["cancelled_by"] == "alice" and found[0].data["reason"] == "budget freeze"
    assert found[0].correlation_id == req["id"]
    # A cancelled requisition can be neither edited, submitted nor cancelled again.
    with unchanged(ctx):
        for method, path in (("patch", ""), ("post", "/submit"), ("post", "/cancel")):
            kwargs = {"json": {"title": "x"}} if method == "patch" else {}
            r = getattr(ctx.client, method)(f"/requisitions/{req['id']}{path}", headers=ALICE,
                                            **kwargs)
            body = assert_problem(r, 409, mention="cancelled")
            assert body["current_status"] == "cancelled"


def test_status_forbidden_actions_are_409_naming_the_status_and_change_nothing(ctx) -> None:
    req = ctx.create()
    ctx.submit(req["id"])
    with unchanged(ctx):
        assert_problem(ctx.client.patch(f"/requisitions/{req['id']}", json={"title": "x"},
                                        headers=ALICE), 409, mention="pending_approval")
        assert_problem(ctx.client.post(f"/requisitions/{req['id']}/submit", headers=ALICE),
                       409, mention="pending_approval")
    assert ctx.get(req["id"])["title"] == "Laptops and support"


def test_only_the_owner_edits_submits_and_cancels(ctx) -> None:
    req = ctx.create()
    with unchanged(ctx):
        assert_problem(ctx.client.patch(f"/requisitions/{req['id']}", json={"title": "x"},
                                        headers=BOB), 403, mention="alice")
        assert_problem(ctx.client.post(f"/requisitions/{req['id']}/submit", headers=BOB), 403)
        assert_problem(ctx.client.post(f"/requisitions/{req['id']}/cancel", headers=BOB), 403)
        # Wrong role: an admin without the requester role cannot create or submit.
        assert_problem(ctx.client.post("/requisitions", json=requisition_body(), headers=ADMIN), 403)
        assert_problem(ctx.client.post(f"/requisitions/{req['id']}/submit", headers=ADMIN), 403)
        assert_problem(ctx.client.post("/requisitions", json=requisition_body()), 401)
    assert ctx.get(req["id"])["status"] == "draft"


def _line(**kw):
    base = {"description": "Laptop", "quantity": "1", "unit_price": "10", "supplier_id": "SUP-ACME"}
    base.update(kw)
    return base


@pytest.mark.parametrize(("overrides", "path", "rule"), [
    ({"lines": [_line(supplier_id="SUP-NOPE")]}, "lines.0.supplier_id", "unknown_supplier"),
    ({"lines": []}, "lines", "min_items"),
    ({"lines": [_line(quantity="0")]}, "lines.0.quantity", "positive"),
    ({"lines": [_line(), _line(quantity="-2")]}, "lines.1.quantity", "positive"),
    ({"lines": [_line(unit_price="-0.01")]}, "lines.0.unit_price", "non_negative"),
    ({"currency": "EURO"}, "currency", "iso4217"),
    ({"currency": "ABC"}, "currency", "iso4217"),
    ({"lines": [_line(uom="BOXES")]}, "lines.0.uom", "unece_rec20"),
    ({"lines": [_line(quantity="abc")]}, "lines.0.quantity", None),
    ({"lines": [_line(quantity="1.1234567")]}, "lines.0.quantity", None),
    ({"title": ""}, "title", None),
    ({"title": None}, "title", None),
    ({"lines": [_line(colour="red")]}, "lines.0.colour", "extra_forbidden"),
    ({"needed_by": "tomorrow"}, "needed_by", None),
])
def test_invalid_requisitions_are_422_naming_the_field(ctx, overrides, path, rule) -> None:
    with unchanged(ctx):
        r = ctx.client.post("/requisitions", json=requisition_body(**overrides), headers=ALICE)
        assert_problem(r, 422, path, rule)


def test_invalid_patch_is_422_and_changes_nothing(ctx) -> None:
    req = ctx.create()
    with unchanged(ctx):
        for body, path, rule in (
                ({"lines": [_line(supplier_id="NOPE")]}, "lines.0.supplier_id", "unknown_supplier"),
                ({"currency": "XYZ"}, "currency", "iso4217"),
                ({"lines": None}, "lines", "not_null"),
                ({"lines": []}, "lines", "min_items")):
            assert_problem(ctx.client.patch(f"/requisitions/{req['id']}", json=body, headers=ALICE),
                           422, path, rule)
    assert ctx.get(req["id"])["total"] == "3055.98"


def test_malformed_json_is_400_and_unknown_ids_are_404(ctx) -> None:
    with unchanged(ctx):
        r = ctx.client.post("/requisitions", content=b"{not json", headers={
            **ALICE, "content-type": "application/json"})
        assert_problem(r, 400)
        for method, path in (("get", ""), ("patch", ""), ("post", "/submit"), ("post", "/cancel")):
            kwargs = {"json": {"title": "x"}} if method == "patch" else {}
            r = getattr(ctx.client, method)(f"/requisitions/nope{path}", headers=ALICE, **kwargs)
            assert_problem(r, 404, mention="nope")


def test_visibility_and_list_filters(ctx) -> None:
    carol = bearer(f"carol-{uuid.uuid4().hex[:6]}", "requester")
    own = [ctx.create(carol)["id"] for _ in range(3)]
    ctx.submit(own[0], carol)
    other = ctx.create(BOB)["id"]
    # Requesters see only their own (with or without mine=true).
    mine = ctx.client.get("/requisitions", headers=carol).json()
    assert [r["id"] for r in mine["items"]] == own[::-1]  # newest first
    assert "history" not in mine["items"][0]
    assert_problem(ctx.client.get(f"/requisitions/{other}", headers=carol), 403)
    # Paging with limit/cursor walks every item once.
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ctx.client.get("/requisitions", params=params, headers=carol).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == own[::-1]
    pending = ctx.client.get("/requisitions", params={"status": "pending_approval"},
                             headers=carol).json()
    assert [r["id"] for r in pending["items"]] == [own[0]]
    # Admins, auditors and approvers see everyone's; mine=true narrows to their own.
    for headers in (ADMIN, AUDITOR, APPROVER):
        everyone = ctx.client.get("/requisitions", params={"limit": 500}, headers=headers).json()
        assert {other, *own} <= {r["id"] for r in everyone["items"]}
        assert ctx.get(other, headers)["requester"] == "bob"
    assert ctx.client.get("/requisitions", params={"mine": "true"}, headers=AUDITOR).json()["items"] == []
    # A receiver has no requisitions of their own and sees no one else's.
    assert ctx.client.get("/requisitions", headers=RECEIVER).json()["items"] == []
    assert_problem(ctx.client.get("/requisitions", params={"status": "nonsense"}, headers=carol),
                   422, "status")
    assert_problem(ctx.client.get("/requisitions", params={"cursor": "zzz"}, headers=carol),
                   422, "cursor", "invalid_cursor")
    assert_problem(ctx.client.get("/requisitions", params={"limit": 0}, headers=carol), 422, "limit")


def test_decimals_are_answered_in_plain_notation(ctx) -> None:
    req = ctx.create(lines=[{"description": "Cable", "quantity": "1E+2", "uom": "MTR",
                             "unit_price": 0.25, "supplier_id": "SUP-ACME"}])
    line = req["lines"][0]
    assert (line["quantity"], line["unit_price"], line["amount"], req["total"]) == (
        "100", "0.25", "25.00", "25.00")
    assert ctx.get(req["id"])["lines"][0]["quantity"] == "100"
