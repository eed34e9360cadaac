"""Shared set-up for benchmark scripts: real embedded PostgreSQL + Tansu in a temp dir
(or the ones named by P2P_DATABASE_URL / P2P_KAFKA_BOOTSTRAP)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from shared.devstack import EmbeddedPostgres, broker_process, free_port, port_open, wait_for

RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def infrastructure():
    """Yields (database server URL, kafka bootstrap)."""
    workdir = Path(tempfile.mkdtemp(prefix="p2p-bench-"))
    os.chmod(workdir, 0o755)
    pg = broker = None
    try:
        db_url = os.environ.get("P2P_DATABASE_URL")
        if not db_url:
            pg = EmbeddedPostgres(workdir / "pg").start()
            db_url = pg.uri
        bootstrap = os.environ.get("P2P_KAFKA_BOOTSTRAP")
        if not bootstrap:
            port = free_port()
            broker = broker_process(port, workdir / "kafka.log").start()
            wait_for(lambda: port_open(port), 20, "broker")
            bootstrap = f"127.0.0.1:{port}"
        yield db_url, bootstrap
    finally:
        if broker:
            broker.stop()
        if pg:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "at": datetime.now(UTC).isoformat()}


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{int(time.time())}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2, default=str))
    return path
