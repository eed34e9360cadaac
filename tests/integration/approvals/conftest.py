from __future__ import annotations

import pytest


@pytest.fixture
def approval_settings(temporal_address, infra):  # noqa: ANN001, ANN201
    """Settings on the Temporal dev server with this test's own topics, databases, task queue."""
    return infra.settings(temporal_address=temporal_address)
