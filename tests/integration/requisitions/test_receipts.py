"""Goods receipts, returns, over-receipt, closing, authorisation and concurrency on POs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.integration.requisitions.conftest import (
    ADMIN,
    ALICE,
    AUDITOR,
    BOB,
    RECEIVER,
    assert_problem,
    start,
    unchanged,
)
from tests.support.auth import bearer
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration


def receive(ctx, ref: str, *lines: tuple[int, str], headers=RECEIVER, **extra):
    body = {"lines": [{"line_no": n, "quantity": q} for n, q in lines], **extra}
    return ctx.client.post(f"/purchase-orders/{ref}/receipts", json=body, headers=headers)


def received(ctx, ref: str) -> list[str]:
    return [ln["received_quantity"] for ln in ctx.po(ref)["lines"]]


def test_partial_full_and_return_move_po_and_requisition_statuses(ctx) -> None:
    req = ctx.ordered()
    acme, globex = req["purchase_orders"]
    reader = ctx.reader("p2p.purchase-orders")
    try:
        r = receive(ctx, acme, (1, "1"), note="first pallet",
                    received_at="2026-11-20T09:30:00Z")
        assert r.status_code == 201, r.text
        receipt = r.json()
        assert receipt["purchase_order"]["status"] == "partially_received"
        assert receipt["received_at"] == "2026-11-20T09:30:00Z" and receipt["recorded_by"] == "rita"
        assert ctx.get(req["id"])["status"] == "partially_received"
        # Everything on both POs (the services line can be confirmed too).
        assert receive(ctx, acme, (1, "1"), (2, "2")).status_code == 201
        assert ctx.po(acme)["status"] == "received"
        assert ctx.get(req["id"])["status"] == "partially_received"  # Globex still open
        assert receive(ctx, globex, (1, "3"), headers=ALICE).status_code == 201  # the requester
        assert ctx.get(req["id"])["status"] == "received"
        # A return takes the PO and the requisition back to partially received.
        r = receive(ctx, acme, (2, "-1"), note="one dock was broken")
        assert r.status_code == 201, r.text
        po = ctx.po(acme)
        assert po["status"] == "partially_received"
        assert [(ln["ordered_quantity"], ln["received_quantity"], ln["open_quantity"])
                for ln in po["lines"]] == [("2", "2", "0"), ("2", "1", "1")]
        assert [len(x["lines"]) for x in po["receipts"]] == [1, 2, 1]
        assert ctx.get(req["id"])["status"] == "partially_received"
        events = wait_until(lambda: (es := [e for e in reader.envelopes()
                                            if e.type == "p2p.goods_receipt.recorded.v1"
                                            and e.data["po_number"] in (acme, globex)])
                            and len(es) == 4 and es, message="four goods_receipt.recorded")
    finally:
        reader.close()
    first = next(e for e in events if e.data["receipt_id"] == receipt["id"])
    assert first.subject == first.data["po_id"] == po["id"]  # keyed by PO id
    assert first.correlation_id == req["id"]
    assert first.data["lines"] == [{"line_no": 1, "quantity": "1"}]
    assert first.data["received_at"].startswith("2026-11-20T09:30:00")
    assert first.data["note"] == "first pallet" and first.data["recorded_by"] == "rita"
    ret = [e for e in events if e.data["lines"] == [{"line_no": 2, "quantity": "-1"}]]
    assert len(ret) == 1


def test_requisition_history_follows_receipts(ctx) -> None:
    req = ctx.ordered()
    acme, globex = req["purchase_orders"]
    receive(ctx, acme, (1, "2"), (2, "2"))
    receive(ctx, globex, (1, "3"))
    receive(ctx, globex, (1, "-3"))
    receive(ctx, acme, (1, "-2"), (2, "-2"))
    actions = [(h["action"], h["to_status"]) for h in ctx.get(req["id"])["history"]][4:]
    assert actions == [("partially_received", "partially_received"), ("received", "received"),
                       ("partially_received", "partially_received"), ("ordered", "ordered")]


@pytest.mark.parametrize(("lines", "path", "rule"), [
    ([(1, "3")], "lines.0.quantity", "over_receipt"),
    ([(1, "1"), (2, "2.000001")], "lines.1.quantity", "over_receipt"),
    ([(1, "-1")], "lines.0.quantity", "below_zero"),
    ([(9, "1")], "lines.0.line_no", "unknown_line"),
    ([(1, "1"), (1, "1")], "lines.1.line_no", "duplicate_line"),
    ([(1, "0")], "lines.0.quantity", "non_zero"),
    ([], "lines", "min_items"),
    ([(1, "one")], "lines.0.quantity", None),
    ([(0, "1")], "lines.0.line_no", None),
])
def test_bad_receipts_are_422_naming_the_field_and_change_nothing(ctx, lines, path, rule) -> None:
    req = ctx.ordered()
    acme = req["purchase_orders"][0]
    with unchanged(ctx):
        assert_problem(receive(ctx, acme, *lines), 422, path, rule)
    assert received(ctx, acme) == ["0", "0"] and ctx.po(acme)["status"] == "issued"
    assert ctx.get(req["id"])["status"] == "ordered"


def test_future_or_naive_received_at_is_422(ctx) -> None:
    acme = ctx.ordered()["purchase_orders"][0]
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    with unchanged(ctx):
        assert_problem(receive(ctx, acme, (1, "1"), received_at=future), 422, "received_at",
                       "not_future")
        assert_problem(receive(ctx, acme, (1, "1"), received_at="2026-11-20T09:30:00"), 422,
                       "received_at")


def test_who_may_record_receipts_and_read_pos(ctx) -> None:
    acme = ctx.ordered()["purchase_orders"][0]
    with unchanged(ctx):
        for headers in (BOB, AUDITOR, ADMIN, bearer("ann", "ap_clerk")):
            assert_problem(receive(ctx, acme, (1, "1"), headers=headers), 403)
        assert_problem(receive(ctx, acme, (1, "1"), headers={}), 401)
        assert_problem(receive(ctx, "PO-999999", (1, "1")), 404, mention="PO-999999")
        assert_problem(ctx.client.post(f"/purchase-orders/{acme}/close", headers=BOB), 403)
        assert_problem(ctx.client.post(f"/purchase-orders/{acme}/close", headers=RECEIVER), 403)
    assert_problem(ctx.client.get(f"/purchase-orders/{acme}", headers=BOB), 403)
    assert ctx.po(acme, AUDITOR)["number"] == acme
    assert ctx.po(acme, ALICE)["number"] == acme
    assert ctx.client.get("/purchase-orders", headers=BOB).json()["items"] == []  # not his
    mine = ctx.client.get("/purchase-orders", params={"mine": "true", "limit": 500}, headers=ALICE)
    assert acme in {p["number"] for p in mine.json()["items"]}
    assert_problem(ctx.client.get("/purchase-orders", params={"status": "bogus"}, headers=ALICE),
                   422, "status")


def test_closing_emits_closed_and_blocks_receipts(ctx) -> None:
    req = ctx.ordered()
    acme, globex = req["purchase_orders"]
    assert receive(ctx, acme, (1, "1")).status_code == 201
    r = ctx.client.post(f"/purchase-orders/{acme}/close", headers=ALICE)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["close_reason"] == "received"
    r = ctx.client.post(f"/purchase-orders/{globex}/close", json={"reason": "cancelled"},
                        headers=ADMIN)
    assert r.json()["status"] == "cancelled"
    with unchanged(ctx):
        body = assert_problem(receive(ctx, acme, (1, "1")), 409, mention="closed")
        assert body["current_status"] == "closed"
        assert_problem(receive(ctx, globex, (1, "1")), 409, mention="cancelled")
        assert_problem(ctx.client.post(f"/purchase-orders/{acme}/close", headers=ALICE), 409)
    reader = ctx.reader("p2p.purchase-orders")
    try:
        closed = wait_until(lambda: (es := [e for e in reader.envelopes()
                                            if e.type == "p2p.purchase_order.closed.v1"
                                            and e.data["po_number"] in (acme, globex)])
                            and len(es) == 2 and es, message="two purchase_order.closed")
    finally:
        reader.close()
    assert {e.data["po_number"]: e.data["reason"] for e in closed} == {
        acme: "received", globex: "cancelled"}
    assert all(e.subject == e.data["po_id"] for e in closed)


def test_cancelling_a_po_with_received_goods_is_409(ctx) -> None:
    acme = ctx.ordered()["purchase_orders"][0]
    receive(ctx, acme, (1, "1"))
    with unchanged(ctx):
        assert_problem(ctx.client.post(f"/purchase-orders/{acme}/close", json={"reason": "cancelled"},
                                       headers=ALICE), 409)
        assert_problem(ctx.client.post(f"/purchase-orders/{acme}/close", json={"reason": "lost"},
                                       headers=ALICE), 422, "reason")


def test_concurrent_receipts_cannot_over_receive(ctx) -> None:
    req = ctx.ordered(lines=[{"description": "Chairs", "quantity": "10", "unit_price": "50",
                              "supplier_id": "SUP-ACME"}])
    po = req["purchase_orders"][0]
    results: list[int] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        results.append(receive(ctx, po, (1, "3")).status_code)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [201, 201, 201, 422, 422, 422]
    assert received(ctx, po) == ["9"]
    total = ctx.scalar("SELECT sum(rl.quantity) FROM receipt_lines rl JOIN receipts r "
                       "ON r.id = rl.receipt_id JOIN purchase_orders p ON p.id = r.po_id "
                       "WHERE p.number = :n", n=po)
    assert total == Decimal(9)


def test_over_receipt_allowance_comes_from_settings(infra) -> None:
    for ctx in start(infra.settings(over_receipt_pct="10")):
        po = ctx.ordered(lines=[{"description": "Cable", "quantity": "20", "uom": "MTR",
                                 "unit_price": "1.25", "supplier_id": "SUP-ACME"}])
        number = po["purchase_orders"][0]
        assert receive(ctx, number, (1, "21.5")).status_code == 201
        assert_problem(receive(ctx, number, (1, "0.6")), 422, "lines.0.quantity", "over_receipt")
        assert receive(ctx, number, (1, "0.5")).status_code == 201  # exactly 110 %
        assert ctx.po(number)["status"] == "received"
        assert received(ctx, number) == ["22.0"]
