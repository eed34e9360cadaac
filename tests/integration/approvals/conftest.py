from __future__ import annotations

import pytest


@pytest.fixture
def approval_settings(temporal_address, infra):
    """Settings on the Temporal dev server with this test's own topics, databases, task queue."""
    return infra.settings(temporal_address=temporal_address)
