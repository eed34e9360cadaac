"""`p2p up` as a subprocess on free ports, exactly as the README runs it (other ports aside)."""

from __future__ import annotations

from shared.devstack import REPO_ROOT as REPO  # noqa: F401 - re-exported for tests
from shared.devstack import UpProcess, start_up

__all__ = ["REPO", "UpProcess", "start_up", "wait_ready"]


def wait_ready(up: UpProcess, timeout: float = 120) -> None:
    up.wait_ready(timeout)
