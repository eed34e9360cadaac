"""Suppliers: admin writes, everyone authenticated reads, duplicates 409, bad input 422."""

from __future__ import annotations

import pytest

from tests.integration.requisitions.conftest import (
    ADMIN,
    ALICE,
    AUDITOR,
    assert_problem,
    unchanged,
)

pytestmark = pytest.mark.integration


def test_create_get_and_list_with_pagination(ctx) -> None:
    body = {"id": "SUP-INITECH", "name": "Initech Ltd", "vat_id": "gb 123 4567 89",
            "peppol_id": "0088:5012345678900", "identifiers": ["0060:123456789"],
            "currency": "GBP"}
    r = ctx.client.post("/suppliers", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["vat_id"] == "GB123456789"  # normalised
    assert created["identifiers"] == ["0060:123456789"]
    got = ctx.client.get("/suppliers/SUP-INITECH", headers=ALICE).json()
    assert got == created
    ids, cursor = [], None
    while True:
        page = ctx.client.get("/suppliers", params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                              headers=AUDITOR).json()
        ids += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == sorted(ids) and {"SUP-ACME", "SUP-GLOBEX", "SUP-INITECH"} <= set(ids)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("field", "value"), [
    ("id", "SUP-ACME"), ("vat_id", "DE123456789"), ("peppol_id", "0088:9482348239847239874")])
def test_duplicates_are_409_naming_the_field(ctx, field, value) -> None:
    body = {"id": "SUP-NEW-" + field, "name": "Dup"}
    body[field] = value
    with unchanged(ctx):
        assert_problem(ctx.client.post("/suppliers", json=body, headers=ADMIN), 409, field, "unique")


@pytest.mark.parametrize(("body", "path", "rule"), [
    ({"id": "S1", "name": "x", "peppol_id": "9482348239847239874"}, "peppol_id", "scheme_value"),
    ({"id": "S1", "name": "x", "peppol_id": "0088:"}, "peppol_id", "scheme_value"),
    ({"id": "S1", "name": "x", "currency": "EURO"}, "currency", "iso4217"),
    ({"id": "S1", "name": "x", "vat_id": "12"}, "vat_id", "pattern"),
    ({"id": "has space", "name": "x"}, "id", "pattern"),
    ({"id": "S1", "name": "   "}, "name", "required"),
    ({"id": "S1"}, "name", "missing"),
    ({"id": "S1", "name": "x", "identifiers": ["a b"]}, "identifiers.0", "pattern"),
    ({"id": "S1", "name": "x", "unknown": 1}, "unknown", "extra_forbidden"),
])
def test_invalid_suppliers_are_422_naming_the_field(ctx, body, path, rule) -> None:
    with unchanged(ctx):
        assert_problem(ctx.client.post("/suppliers", json=body, headers=ADMIN), 422, path, rule)


def test_only_admins_write_and_only_authenticated_users_read(ctx) -> None:
    with unchanged(ctx):
        assert_problem(ctx.client.post("/suppliers", json={"id": "S9", "name": "x"}, headers=ALICE),
                       403, mention="admin")
        assert_problem(ctx.client.post("/suppliers", json={"id": "S9", "name": "x"}), 401)
    assert_problem(ctx.client.get("/suppliers"), 401)
    assert_problem(ctx.client.get("/suppliers/NOPE", headers=ALICE), 404, mention="NOPE")
    assert_problem(ctx.client.get("/suppliers", params={"cursor": "!!"}, headers=ALICE), 422,
                   "cursor", "invalid_cursor")
    assert_problem(ctx.client.get("/suppliers", params={"limit": 501}, headers=ALICE), 422, "limit")
