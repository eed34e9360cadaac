"""`p2p up`: the whole system on one machine, embedded defaults, nothing else needed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shared.devstack import (
    SERVICES,
    EmbeddedPostgres,
    Stack,
    StackError,
    broker_process,
    port_free,
    port_open,
    readyz_ok,
    service_process,
    temporal_process,
    temporal_ready,
    wait_for,
)
from shared.kafka import create_topics
from shared.settings import Settings

console = Console(stderr=True)


class _Stop(Exception):
    pass


def _check_ports(settings: Settings, ui: bool) -> None:
    wanted = {f"{s} service (P2P_{s.upper()}_PORT)": settings.service_port(s) for s in SERVICES}
    if not os.environ.get("P2P_KAFKA_BOOTSTRAP"):
        wanted["Kafka broker (P2P_KAFKA_PORT)"] = settings.kafka_port
    if not os.environ.get("P2P_TEMPORAL_ADDRESS"):
        wanted["Temporal (P2P_TEMPORAL_PORT)"] = settings.temporal_port
        if ui:
            wanted["Temporal UI (P2P_TEMPORAL_UI_PORT)"] = settings.temporal_ui_port
    taken = [f"port {port} for the {what} is already in use"
             for what, port in wanted.items() if not port_free(port)]
    if taken:
        raise StackError("; ".join(taken) + ". Stop what uses it, or set the variable named.")


def run_up(state_dir: str | None = None, ui: bool = True) -> int:
    started = time.monotonic()
    if state_dir:
        os.environ["P2P_STATE_DIR"] = state_dir
    settings = Settings()
    state = settings.state_dir.resolve()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    stack = Stack()

    def on_signal(signum, _frame):  # noqa: ANN001
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env = dict(os.environ)
    try:
        _check_ports(settings, ui)
        with console.status("starting…") as status:
            if not settings.database_url:
                status.update("starting embedded PostgreSQL…")
                stack.postgres = EmbeddedPostgres(state / "postgres").start()
                env["P2P_DATABASE_URL"] = stack.postgres.uri
                console.print(f"[green]✓[/] PostgreSQL  (embedded, data in {state / 'postgres'})")
            else:
                console.print("[green]✓[/] PostgreSQL  (external, P2P_DATABASE_URL)")

            if not os.environ.get("P2P_KAFKA_BOOTSTRAP"):
                status.update("starting the Kafka-protocol broker (Tansu)…")
                broker = broker_process(settings.kafka_port, state / "logs" / "kafka.log").start()
                stack.processes.append(broker)
                wait_for(lambda: port_open(settings.kafka_port), 20, "the Kafka broker")
                env["P2P_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{settings.kafka_port}"
            kafka_settings = Settings(kafka_bootstrap=env["P2P_KAFKA_BOOTSTRAP"])
            status.update("creating topics…")
            wait_for(lambda: create_topics(kafka_settings) is not None, 30, "topic creation",
                     interval=0.5)
            console.print(f"[green]✓[/] Kafka       {env['P2P_KAFKA_BOOTSTRAP']} "
                          f"({settings.topic_partitions} partitions per topic)")

            if not os.environ.get("P2P_TEMPORAL_ADDRESS"):
                status.update("starting the Temporal dev server…")
                temporal = temporal_process(settings.temporal_port,
                                            settings.temporal_ui_port if ui else None,
                                            state / "temporal.db", state / "logs" / "temporal.log")
                stack.processes.append(temporal.start())
                env["P2P_TEMPORAL_ADDRESS"] = f"127.0.0.1:{settings.temporal_port}"
                wait_for(lambda: temporal_ready(env["P2P_TEMPORAL_ADDRESS"]), 60,
                         "the Temporal dev server", interval=0.5)
            console.print(f"[green]✓[/] Temporal    {env['P2P_TEMPORAL_ADDRESS']}")

            for service in SERVICES:
                port = settings.service_port(service)
                proc = service_process(service, port, env, state / "logs" / f"{service}.log")
                stack.processes.append(proc.start())
            for service in SERVICES:
                port = settings.service_port(service)
                status.update(f"waiting for {service} /readyz…")
                proc = next(p for p in stack.processes if p.name == service)

                def ready(port: int = port, proc=proc) -> bool:  # noqa: ANN001
                    if not proc.alive():
                        raise _Died(service)
                    return readyz_ok(port)

                _wait_service(ready, service, state)
                console.print(f"[green]✓[/] {service:<12}http://127.0.0.1:{port}")

        elapsed = time.monotonic() - started
        _print_urls(settings, env, ui, elapsed)
        def recreate_topics() -> None:
            wait_for(lambda: port_open(settings.kafka_port), 20, "the Kafka broker")
            wait_for(lambda: create_topics(kafka_settings) is not None, 30, "topic creation",
                     interval=0.5)

        _watch(stack, {"kafka": recreate_topics})
        return 0
    except _Stop as stop:
        console.print(f"\n{stop.args[0]}: stopping…")
        return 0
    except StackError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        console.print("stopped.")


class _Died(Exception):
    pass


def _wait_service(ready, service: str, state: Path) -> None:  # noqa: ANN001
    try:
        wait_for(ready, 90, f"the {service} service", interval=0.2)
    except _Died:
        raise StackError(f"the {service} service exited; see {state / 'logs' / (service + '.log')}")
    except StackError:
        raise StackError(f"the {service} service is not ready; see {state / 'logs' / (service + '.log')}")


def _print_urls(settings: Settings, env: dict[str, str], ui: bool, elapsed: float) -> None:
    table = Table(title=f"P2P is up ({elapsed:.1f}s) — Ctrl-C stops everything")
    table.add_column("component")
    table.add_column("where")
    for s in SERVICES:
        port = settings.service_port(s)
        table.add_row(s, f"http://127.0.0.1:{port}/docs  (metrics: /metrics)")
    table.add_row("Kafka", env["P2P_KAFKA_BOOTSTRAP"])
    table.add_row("Temporal", env["P2P_TEMPORAL_ADDRESS"])
    if ui and not os.environ.get("P2P_TEMPORAL_ADDRESS"):
        table.add_row("Temporal UI", f"http://127.0.0.1:{settings.temporal_ui_port}")
    table.add_row("dev token", "p2p token alice --role requester")
    console.print(table)


def _watch(stack: Stack, after_restart: dict[str, Callable[[], None]]) -> None:
    """Block until a signal, restarting any child that dies (a service killed by the OOM killer
    or by `kill -9` comes back on its own; its outbox and inbox make the restart lossless)."""
    restarts: dict[str, list[float]] = {}
    stop = threading.Event()
    while not stop.wait(0.5):
        for p in stack.processes:
            if p.alive():
                continue
            recent = [t for t in restarts.get(p.name, []) if time.monotonic() - t < 60]
            if len(recent) >= 5:
                if len(recent) == 5:
                    console.print(f"[red]{p.name} keeps exiting; giving up on it[/] (see its log)")
                    recent.append(time.monotonic())
                    restarts[p.name] = recent
                continue
            console.print(f"[yellow]{p.name} exited (code {p.proc.returncode}); restarting[/]")
            recent.append(time.monotonic())
            restarts[p.name] = recent
            p.start()
            if p.name in after_restart:
                try:
                    after_restart[p.name]()
                except StackError as exc:
                    console.print(f"[red]{exc}[/]")
