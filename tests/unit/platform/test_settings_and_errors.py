from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from shared.errors import Conflict, Unprocessable, field_error, install_error_handlers
from shared.settings import Settings
from shared.service import BodyLimitMiddleware


def test_default_secret_refused_outside_dev():
    with pytest.raises(ValidationError, match="P2P_JWT_SECRET"):
        Settings(env="production")


def test_real_secret_accepted_outside_dev():
    assert Settings(env="production", jwt_secret="s3cret-from-vault").env == "production"


def test_settings_read_p2p_prefixed_environment(monkeypatch):
    monkeypatch.setenv("P2P_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("P2P_TOPIC_PREFIX", "x.")
    s = Settings()
    assert s.kafka_bootstrap == "kafka:9092" and s.topic("p2p.invoices") == "x.p2p.invoices"


class Body(BaseModel):
    amount: int
    name: str


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=100)

    @app.post("/things")
    def create(body: Body) -> dict:
        if body.name == "dup":
            raise Conflict("thing 'dup' exists", existing_id="T-1")
        if body.amount < 0:
            raise Unprocessable("bad", errors=[field_error("amount", "min", "must be ≥ 0")])
        return {"ok": True}

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("secret internals")

    return TestClient(app, raise_server_exceptions=False)


def test_malformed_json_is_400_problem(client):
    r = client.post("/things", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_invalid_content_is_422_with_field_and_rule(client):
    r = client.post("/things", json={"amount": "lots"})
    assert r.status_code == 422
    errors = {e["path"]: e["rule"] for e in r.json()["errors"]}
    assert errors == {"amount": "int_parsing", "name": "missing"}


def test_business_errors_map_to_their_status_with_extras(client):
    r = client.post("/things", json={"amount": 1, "name": "dup"})
    assert r.status_code == 409 and r.json()["existing_id"] == "T-1"
    r = client.post("/things", json={"amount": -1, "name": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "amount"


def test_oversize_body_is_413(client):
    r = client.post("/things", content=b"x" * 101, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"


def test_unexpected_error_is_500_problem_without_internals(client):
    r = client.get("/boom")
    assert r.status_code == 500 and "secret internals" not in r.text


def test_problem_with_a_lone_surrogate_renders_instead_of_failing():
    from shared.errors import problem

    response = problem(422, "Validation failed", "bad value \ud800 here")
    assert b"\\ud800" in response.body and response.media_type == "application/problem+json"
