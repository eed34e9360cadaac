"""A consumer process for the crash test: kills itself (-9) right after its DB commit, before the
Kafka offset commit (`crash-after-commit`), or drains what is there and prints outcomes (`drain`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sqlalchemy import event, insert  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from shared.consumer import ConsumerRunner, Subscription  # noqa: E402
from shared.contracts.requisitions import RequisitionCancelled  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.integration.platform.conftest import widgets  # noqa: E402

mode = os.environ["CRASH_MODE"]
db = Database(os.environ["CRASH_DB_URL"], pool_size=2)
settings = Settings()


def handler(session, ev, envelope) -> None:  # noqa: ANN001
    session.execute(insert(widgets).values(id=envelope.id, note=ev.requisition_id))
    if mode == "crash-after-commit":
        event.listen(session, "after_commit", lambda _s: os.kill(os.getpid(), signal.SIGKILL))


runner = ConsumerRunner("platform.crash", Subscription({RequisitionCancelled.ce_type: handler}),
                        db.sessions, settings)
outcomes: list[tuple[str, str]] = []
original = runner.settle


def recording(records):  # noqa: ANN001, ANN202
    settled = original(records)
    outcomes.extend((dict(r.headers)["ce_id"].decode(), o) for r, o in zip(records, settled))
    return settled


runner.settle = recording
stop = threading.Event()
thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
thread.start()
deadline = time.monotonic() + 60
while not outcomes and time.monotonic() < deadline:
    time.sleep(0.05)
stop.set()
thread.join(15)
for ce_id, outcome in outcomes:
    print(ce_id, outcome)
sys.exit(0 if outcomes else 3)
