"""A lost or refused database connection is an outage (503, wait), not a bug (500) or poison."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from shared.db import database_unavailable
from shared.errors import install_error_handlers


class _PgError(psycopg.OperationalError):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        self._state = sqlstate
        super().__init__(message)

    @property
    def sqlstate(self) -> str | None:  # psycopg reads it from the server's diagnostics
        return self._state


def _wrapped(cls, message: str, sqlstate: str | None, invalidated: bool = False):
    return cls("SELECT 1", {}, _PgError(message, sqlstate), connection_invalidated=invalidated)


@pytest.mark.parametrize("exc", [
    _wrapped(OperationalError, "connection failed: server is not accepting connections", None),
    _wrapped(OperationalError, "the database system is starting up", "57P03"),
    _wrapped(OperationalError, "terminating connection due to administrator command", "57P01"),
    _wrapped(OperationalError, "connection failure", "08006"),
    _wrapped(OperationalError, "server closed the connection unexpectedly", "XX000", invalidated=True),
])
def test_outages_are_recognised(exc):
    assert database_unavailable(exc)


@pytest.mark.parametrize("exc", [
    _wrapped(OperationalError, "could not serialize access", "40001"),
    _wrapped(OperationalError, "canceling statement due to statement timeout", "57014"),
    _wrapped(IntegrityError, "duplicate key value", "23505"),
    _wrapped(ProgrammingError, "relation does not exist", "42P01"),
    RuntimeError("not a database error"),
])
def test_statement_errors_are_not_outages(exc):
    assert not database_unavailable(exc)


def test_an_outage_during_a_request_is_503_problem_json_with_retry_after():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/down")
    def down() -> None:
        raise _wrapped(OperationalError, "the database system is starting up", "57P03")

    @app.get("/bug")
    def bug() -> None:
        raise _wrapped(ProgrammingError, "relation does not exist", "42P01")

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/down")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "1"
    assert r.json()["type"] == "database-unavailable"
    assert client.get("/bug").status_code == 500
