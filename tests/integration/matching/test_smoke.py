from __future__ import annotations

import pytest

from tests.integration.matching.conftest import CLERK, invoice, po_issued, receipt
from tests.support.kafka import produce
from tests.support.poll import wait_until

pytestmark = pytest.mark.integration


def test_touchless(matching, matching_settings):
    s = matching_settings
    produce(s, po_issued("PO-000001"))
    produce(s, receipt("PO-000001", {1: "10"}))
    inv = invoice("PO-000001", [("1", "10", "100.00"), ("2", "5", "800.00")])
    produce(s, inv)

    def decided():
        r = matching.client.get(f"/matches/{inv.invoice_id}", headers=CLERK)
        return r.json() if r.status_code == 200 and r.json()["status"] == "cleared" else None

    m = wait_until(decided, 30, message="matched")
    print(m)
    assert m["outcome"] == "matched"
