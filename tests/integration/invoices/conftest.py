from __future__ import annotations

import pytest

from services.invoices.app import create_app
from tests.support.auth import bearer
from tests.support.stack import run_service


@pytest.fixture(scope="module")
def invoices(infra):
    """One invoices service per test module, on its own database and topics."""
    settings = infra.settings()
    with run_service(create_app, settings) as svc:
        yield svc


@pytest.fixture(scope="session")
def clerk() -> dict[str, str]:
    return bearer("clara", "ap_clerk")


@pytest.fixture(scope="session")
def integration() -> dict[str, str]:
    return bearer("peppol-ap", "integration")


def post(svc, body: bytes | str, content_type: str, headers: dict[str, str]):
    data = body.encode() if isinstance(body, str) else body
    return svc.client.post("/invoices", content=data,
                           headers={**headers, "Content-Type": content_type})
