"""Business metrics, PO paging, and hostile input that must never become a 500."""

from __future__ import annotations

import re

import pytest

from tests.integration.requisitions.conftest import (
    ADMIN,
    ALICE,
    RECEIVER,
    assert_problem,
    requisition_body,
    unchanged,
)

pytestmark = pytest.mark.integration


def _metric(ctx, name: str) -> float:
    text = ctx.client.get("/metrics").text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not exposed"
    return float(match.group(1))


def test_business_counters_count_committed_work(ctx) -> None:
    names = ("p2p_requisitions_submitted_total", "p2p_purchase_orders_issued_total",
             "p2p_goods_receipts_recorded_total")
    before = {n: _metric(ctx, n) for n in names}
    req = ctx.ordered()  # one submission, two POs
    r = ctx.client.post(f"/purchase-orders/{req['purchase_orders'][0]}/receipts",
                        json={"lines": [{"line_no": 1, "quantity": "1"}]}, headers=RECEIVER)
    assert r.status_code == 201
    # A refused receipt and a refused submit count nothing.
    ctx.client.post(f"/purchase-orders/{req['purchase_orders'][0]}/receipts",
                    json={"lines": [{"line_no": 1, "quantity": "99"}]}, headers=RECEIVER)
    ctx.client.post(f"/requisitions/{req['id']}/submit", headers=ALICE)
    after = {n: _metric(ctx, n) for n in names}
    assert {n: after[n] - before[n] for n in names} == {
        "p2p_requisitions_submitted_total": 1, "p2p_purchase_orders_issued_total": 2,
        "p2p_goods_receipts_recorded_total": 1}


def test_purchase_orders_page_with_cursor_and_filters(ctx) -> None:
    reqs = [ctx.ordered() for _ in range(2)]
    numbers = [n for r in reqs for n in r["purchase_orders"]]
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = ctx.client.get("/purchase-orders", params=params, headers=ADMIN).json()
        assert len(page["items"]) <= 3
        seen += [p["number"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and set(numbers) <= set(seen)
    one = ctx.client.get("/purchase-orders", params={"requisition_id": reqs[0]["id"]},
                         headers=RECEIVER).json()["items"]
    assert sorted(p["number"] for p in one) == sorted(reqs[0]["purchase_orders"])
    issued = ctx.client.get("/purchase-orders", params={"status": "issued", "limit": 500},
                            headers=RECEIVER).json()["items"]
    assert set(numbers) <= {p["number"] for p in issued}
    assert "receipts" not in one[0] and one[0]["lines"][0]["received_quantity"] == "0"


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), [
    ("post", "/requisitions", {"json": requisition_body(title="a\u0000b")}, 422),
    ("post", "/suppliers", {"json": {"id": "S-NUL", "name": "x", "peppol_id": "0088:1\u00002"}}, 422),
    ("get", "/requisitions/abc%00def", {}, 404),
    ("get", "/purchase-orders/PO-%00", {}, 404),
    ("get", "/suppliers/a%00", {}, 404),
    ("get", "/purchase-orders?supplier_id=a%00", {}, 422),
    ("post", "/purchase-orders/x%00/receipts", {"json": {"lines": [{"line_no": 1, "quantity": "1"}]}}, 404),
    ("post", "/requisitions", {"json": requisition_body(lines=[{
        "description": "x", "quantity": "1e30", "unit_price": "1", "supplier_id": "SUP-ACME"}])}, 422),
    ("post", "/requisitions", {"json": requisition_body(lines=[{
        "description": "x", "quantity": "NaN", "unit_price": "1", "supplier_id": "SUP-ACME"}])}, 422),
    ("post", "/requisitions", {"json": [1, 2]}, 422),
    ("post", "/requisitions", {"json": requisition_body(lines="many")}, 422),
    ("get", "/requisitions?cursor=djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", {}, 422),
    ("post", "/purchase-orders/PO-000001/receipts", {"json": {"lines": [
        {"line_no": 10**30, "quantity": "1"}]}}, 422),
])
def test_hostile_input_is_a_clean_4xx(ctx, method, url, kwargs, status) -> None:
    headers = {**ALICE, **RECEIVER} if "receipts" in url else (ADMIN if "suppliers" in url else ALICE)
    with unchanged(ctx):
        assert_problem(getattr(ctx.client, method)(url, headers=headers, **kwargs), status)
