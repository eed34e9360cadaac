"""Session-wide real infrastructure for tests: embedded PostgreSQL, Tansu, Temporal dev server.

Each test gets its own topic prefix (so its own topics and consumer groups) and its own
databases, so tests share the processes but never each other's data.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from shared.db import service_database, sqlalchemy_url
from shared.devstack import (
    EmbeddedPostgres,
    ManagedProcess,
    broker_process,
    free_port,
    port_open,
    temporal_process,
    temporal_ready,
    wait_for,
)
from shared.kafka import create_topics
from shared.service import ServiceRuntime
from shared.settings import Settings


@dataclass
class Infra:
    pg: EmbeddedPostgres
    broker: ManagedProcess
    kafka_bootstrap: str
    broker_port: int
    workdir: Path
    temporal: ManagedProcess | None = None
    temporal_address: str | None = None

    def settings(self, **overrides) -> Settings:  # noqa: ANN003
        prefix = f"t{uuid.uuid4().hex[:10]}."
        values = dict(
            database_url=self.pg.uri,
            kafka_bootstrap=self.kafka_bootstrap,
            topic_prefix=prefix,
            topic_partitions=3,
            relay_idle_seconds=0.05,
            consumer_retry_backoff_seconds=0.05,
            temporal_address=self.temporal_address or "127.0.0.1:7233",
            temporal_task_queue=f"{prefix}approvals",
        )
        values.update(overrides)
        settings = Settings(**values)
        create_topics(settings)
        return settings

    def restart_broker(self) -> None:
        self.broker.stop()
        self.start_broker()

    def start_broker(self) -> None:
        self.broker = broker_process(self.broker_port, self.workdir / "kafka.log").start()
        wait_for(lambda: port_open(self.broker_port), 20, "the broker")

    def ensure_temporal(self) -> str:
        if self.temporal_address is None:
            port = free_port()
            self.temporal = temporal_process(port, None, self.workdir / "temporal.db",
                                             self.workdir / "temporal.log").start()
            address = f"127.0.0.1:{port}"
            wait_for(lambda: temporal_ready(address), 60, "the Temporal dev server", interval=0.3)
            self.temporal_address = address
        return self.temporal_address

    def stop(self) -> None:
        if self.temporal:
            self.temporal.stop()
        self.broker.stop()
        self.pg.stop()


def start_infra(workdir: Path) -> Infra:
    pg = EmbeddedPostgres(workdir / "pg").start()
    port = free_port()
    broker = broker_process(port, workdir / "kafka.log").start()
    wait_for(lambda: port_open(port), 20, "the broker")
    return Infra(pg=pg, broker=broker, kafka_bootstrap=f"127.0.0.1:{port}", broker_port=port,
                 workdir=workdir)


def service_engine(settings: Settings, service: str):  # noqa: ANN201
    """An engine on a service's test database, for assertions on what it stored."""
    return create_engine(sqlalchemy_url(settings.database_url,
                                        service_database(service, settings.topic_prefix)))


def drop_databases(settings: Settings, services: tuple[str, ...]) -> None:
    engine = create_engine(sqlalchemy_url(settings.database_url, "postgres"),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for s in services:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{service_database(s, settings.topic_prefix)}" WITH (FORCE)'))
    engine.dispose()


@dataclass
class RunningService:
    client: TestClient
    runtime: ServiceRuntime
    settings: Settings

    def wait_consumers_ready(self, timeout: float = 30.0) -> None:
        for c in self.runtime.consumers:
            if not c.ready.wait(timeout):
                raise AssertionError(f"consumer {c.name} got no partitions within {timeout}s")


@contextmanager
def run_service(create_app, settings: Settings):  # noqa: ANN001
    """Run a service in-process (API, relay, consumers) with its lifespan, like `p2p serve`."""
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        running = RunningService(client=client, runtime=app.state.runtime, settings=settings)
        running.wait_consumers_ready()
        yield running
