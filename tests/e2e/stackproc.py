"""`p2p up` as a subprocess on free ports, exactly as the README runs it (other ports aside)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from shared.devstack import REPO_ROOT as REPO  # noqa: F401 - re-exported for tests
from shared.devstack import UpProcess, start_up

__all__ = ["REPO", "UpProcess", "run_demo", "stack_dir", "start_up", "wait_ready"]


def stack_dir(prefix: str = "p2p-stack-") -> Path:
    """A world-readable temp dir: the embedded PostgreSQL runs as its own user when tests run as
    root, and pytest's own temp root is 0700 (and reset by every pytest that starts)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


def wait_ready(up: UpProcess, timeout: float = 120) -> None:
    up.wait_ready(timeout)


def run_demo(up: UpProcess, requisitions: int, seed: int) -> subprocess.CompletedProcess:
    """`p2p demo` as a newcomer runs it, against this stack's ports (nothing else inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_")}
    env.update({f"P2P_{name.upper()}_PORT": str(port) for name, port in up.ports.items()})
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "demo", "--requisitions", str(requisitions),
         "--seed", str(seed)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
