"""Fixtures: the real infrastructure is started once per test session and shared."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.stack import Infra, start_infra

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
PEPPOL_DIR = SHARED_DIR / "data" / "peppol"


@pytest.fixture(scope="session")
def infra() -> Infra:
    workdir = Path(tempfile.mkdtemp(prefix="p2p-tests-"))
    os.chmod(workdir, 0o755)  # the embedded server runs as its own user when we are root
    infra = start_infra(workdir)
    yield infra
    infra.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def settings(infra: Infra):
    """Settings for one test: its own topic prefix (topics, groups) and databases."""
    return infra.settings()


@pytest.fixture
def temporal_address(infra: Infra) -> str:
    return infra.ensure_temporal()


@pytest.fixture(scope="session")
def peppol_dir() -> Path:
    if not PEPPOL_DIR.is_dir():
        pytest.fail(f"PEPPOL examples not found at {PEPPOL_DIR} (../shared next to the checkout)")
    return PEPPOL_DIR
