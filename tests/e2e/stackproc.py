"""`p2p up` as a subprocess on free ports, exactly as the README runs it (other ports aside)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from shared.devstack import SERVICES, free_port
from tests.support.poll import wait_until

REPO = Path(__file__).resolve().parents[2]


@dataclass
class UpProcess:
    proc: subprocess.Popen
    ports: dict[str, int]
    state_dir: Path
    log: Path

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def start_up(state_dir: Path, extra_env: dict[str, str] | None = None, ui: bool = False) -> UpProcess:
    ports = {s: free_port() for s in SERVICES}
    ports.update(kafka=free_port(), temporal=free_port(), temporal_ui=free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_")}
    env.update({f"P2P_{s.upper()}_PORT": str(ports[s]) for s in SERVICES})
    env.update(P2P_KAFKA_PORT=str(ports["kafka"]), P2P_TEMPORAL_PORT=str(ports["temporal"]),
               P2P_TEMPORAL_UI_PORT=str(ports["temporal_ui"]), PYTHONUNBUFFERED="1")
    env.update(extra_env or {})
    log = state_dir.parent / f"{state_dir.name}-up.log"
    argv = [sys.executable, "-m", "shared.cli.main", "up", "--state-dir", str(state_dir)]
    if not ui:
        argv.append("--no-ui")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    return UpProcess(proc=proc, ports=ports, state_dir=state_dir, log=log)


def wait_ready(up: UpProcess, timeout: float = 120) -> None:
    def ready() -> bool:
        if up.proc.poll() is not None:
            raise AssertionError(f"p2p up exited with {up.proc.returncode}:\n{up.output()[-3000:]}")
        return "P2P is up" in up.output()

    wait_until(ready, timeout, interval=0.2, message="p2p up to report all services ready")
