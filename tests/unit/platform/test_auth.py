"""JWT auth and role checks, through a real FastAPI app and the shared error handlers."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.auth import CurrentUser, mint_token, require_roles
from shared.errors import install_error_handlers
from shared.settings import DEV_JWT_SECRET
from tests.support.auth import bearer


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/me")
    def me(user: CurrentUser) -> dict:
        return {"id": user.id, "roles": sorted(user.roles)}

    @app.get("/admin-only", dependencies=[require_roles("admin")])
    def admin_only() -> dict:
        return {"ok": True}

    return TestClient(app)


def _assert_problem(response, status: int) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_valid_token_identifies_the_user(client):
    r = client.get("/me", headers=bearer("alice", "requester", "approver"))
    assert r.status_code == 200
    assert r.json() == {"id": "alice", "roles": ["approver", "requester"]}


def test_missing_token_is_401(client):
    _assert_problem(client.get("/me"), 401)


def test_wrong_scheme_is_401(client):
    token = mint_token("alice", ["admin"])
    _assert_problem(client.get("/me", headers={"Authorization": f"Basic {token}"}), 401)


def test_bad_signature_is_401(client):
    forged = jwt.encode({"sub": "mallory", "roles": ["admin"], "exp": 9999999999}, "not-the-secret",
                        algorithm="HS256")
    body = _assert_problem(client.get("/admin-only", headers={"Authorization": f"Bearer {forged}"}), 401)
    assert "invalid" in body["detail"]


def test_garbage_token_is_401(client):
    _assert_problem(client.get("/me", headers={"Authorization": "Bearer not.a.jwt"}), 401)


def test_expired_token_is_401(client):
    headers = bearer("alice", "admin", ttl=timedelta(seconds=-5))
    body = _assert_problem(client.get("/me", headers=headers), 401)
    assert "expired" in body["detail"]


def test_none_algorithm_is_refused(client):
    unsigned = jwt.encode({"sub": "mallory", "roles": ["admin"], "exp": 9999999999}, None,
                          algorithm="none")
    _assert_problem(client.get("/admin-only", headers={"Authorization": f"Bearer {unsigned}"}), 401)


def test_wrong_role_is_403(client):
    body = _assert_problem(client.get("/admin-only", headers=bearer("alice", "requester")), 403)
    assert "admin" in body["detail"]


def test_right_role_passes(client):
    assert client.get("/admin-only", headers=bearer("root", "admin")).status_code == 200


def test_minting_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown role"):
        mint_token("alice", ["superuser"])


def test_token_claims_follow_the_contract():
    claims = jwt.decode(mint_token("bob", ["approver"], name="Bob Ortiz"), DEV_JWT_SECRET,
                        algorithms=["HS256"])
    assert claims["sub"] == "bob" and claims["roles"] == ["approver"] and claims["name"] == "Bob Ortiz"
    assert claims["exp"] - claims["iat"] == 12 * 3600


def test_401_names_the_bearer_scheme(client):
    assert client.get("/me").headers["www-authenticate"].startswith("Bearer")
