"""The policy file is loaded at first start only, and an invalid one stops the service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.approvals.app import create_app
from tests.support.auth import bearer
from tests.support.stack import run_service

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[3] / "deploy" / "approval-policy.yaml"


def test_first_start_loads_the_configured_file_later_starts_keep_the_stored_versions(
        approval_settings, infra, tmp_path):
    doc = yaml.safe_load(DEMO.read_text())
    doc["auto_approve_below"] = "250.00"
    custom = tmp_path / "policy.yaml"
    custom.write_text(yaml.safe_dump(doc))
    settings = approval_settings.model_copy(update={"approval_policy": custom})
    with run_service(create_app, settings) as svc:
        got = svc.client.get("/policy", headers=bearer("alice", "requester")).json()
        assert got["version"] == 1 and got["policy"]["auto_approve_below"] == "250.00"
        doc["auto_approve_below"] = "300.00"
        r = svc.client.put("/policy", json=doc, headers=bearer("root", "admin"))
        assert r.status_code == 201 and r.json()["version"] == 2
    custom.write_text("this: [is not a policy")  # ignored: the database has versions already
    with run_service(create_app, settings) as svc:
        got = svc.client.get("/policy", headers=bearer("alice", "requester")).json()
        assert got["version"] == 2 and got["policy"]["auto_approve_below"] == "300.00"


def test_an_invalid_policy_file_stops_the_first_start(approval_settings, tmp_path):
    doc = yaml.safe_load(DEMO.read_text())
    doc["users"][1]["manager"] = "ghost"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    settings = approval_settings.model_copy(update={"approval_policy": bad})
    with pytest.raises(RuntimeError, match=r"users\[1\]\.manager"), \
            run_service(create_app, settings):
        pass
