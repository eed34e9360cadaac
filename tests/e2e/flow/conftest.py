"""One `p2p up` (started the way the README starts it, on free ports) for every flow test in
this package, driven over HTTP only; stopped after the last one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.cli.demo.client import Api
from shared.cli.demo.world import DEMO_SUPPLIERS
from shared.settings import Settings
from tests.e2e.flow.flows import ADMIN
from tests.e2e.stackproc import UpProcess, stack_dir, start_up, wait_ready


@pytest.fixture(scope="package")
def stack() -> UpProcess:
    workdir = stack_dir("p2p-flow-")
    up = start_up(workdir / "state")
    try:
        wait_ready(up, timeout=180)
        yield up
    finally:
        code = up.terminate()
        shutil.rmtree(workdir, ignore_errors=True)
        assert code == 0, up.output()[-3000:]


@pytest.fixture(scope="package")
def api(stack: UpProcess) -> Api:
    settings = Settings(**{f"{s}_port": stack.ports[s]
                           for s in ("requisitions", "approvals", "invoices", "matching")},
                        temporal_ui_port=stack.ports["temporal_ui"])
    client = Api(settings)
    for supplier in DEMO_SUPPLIERS:  # the same suppliers the demo seeds (409 = already there)
        client.request("requisitions", "POST", "/suppliers", user=ADMIN[0], roles=ADMIN[1],
                       json=supplier.as_request(), ok=(201, 409))
    yield client
    client.close()


@pytest.fixture(scope="package")
def base_example(peppol_dir: Path) -> bytes:
    return (peppol_dir / "base-example.xml").read_bytes()
