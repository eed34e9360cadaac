"""The approvals service on PostgreSQL, the broker and the Temporal dev server, over HTTP + Kafka."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from services.approvals.app import create_app
from shared.contracts.approvals import ApprovalDecided, ApprovalTaskAssigned
from shared.contracts.requisitions import (
    RequisitionCancelled,
    RequisitionLine,
    RequisitionSubmitted,
)
from tests.support.auth import bearer
from tests.support.kafka import TopicReader, produce
from tests.support.poll import wait_until
from tests.support.stack import run_service, service_engine

pytestmark = pytest.mark.integration


def submitted(amount: str, *, requester: str = "alice", cc: str = "CC-100",
              category: str | None = None, req_id: str | None = None,
              submission: int = 1, currency: str = "EUR") -> RequisitionSubmitted:
    return RequisitionSubmitted(
        requisition_id=req_id or f"REQ-{uuid.uuid4().hex[:8]}", submission=submission,
        title="Build servers", requester=requester, cost_center=cc, currency=currency,
        total=Decimal(amount),
        lines=[RequisitionLine(line_no=1, description="server", category=category,
                               quantity=Decimal(1), unit_price=Decimal(amount),
                               amount=Decimal(amount), supplier_id="SUP-1")],
        submitted_at=datetime.now(UTC))


def inbox(client, user: str, req_id: str) -> list[dict]:
    r = client.get("/inbox", headers=bearer(user, "approver"))
    assert r.status_code == 200, r.text
    return [t for t in r.json()["items"] if t["requisition_id"] == req_id]


def task_of(client, user: str, req_id: str) -> dict:
    return wait_until(lambda: (inbox(client, user, req_id) or [None])[0], 30,
                      message=f"a task for {user} on {req_id}")


def decide(client, user: str, task_id: str, decision: str = "approve",
           comment: str | None = None, status: int = 200) -> dict:
    body = {"decision": decision} | ({"comment": comment} if comment is not None else {})
    r = client.post(f"/tasks/{task_id}/decision", json=body, headers=bearer(user, "approver"))
    assert r.status_code == status, r.text
    return r.json()


def decided_events(reader: TopicReader, req_id: str, count: int = 1, timeout: float = 30) -> list:
    def found():
        evs = [e for e in reader.envelopes()
               if e.type == ApprovalDecided.ce_type and e.subject == req_id]
        return evs if len(evs) >= count else None
    return wait_until(found, timeout, message=f"approval.decided for {req_id}")


def test_submission_to_decision_over_kafka_and_http(approval_settings):
    s = approval_settings
    reader = TopicReader(s, s.topic("p2p.approvals"))
    with run_service(create_app, s) as svc:
        c = svc.client
        req = submitted("6000.00")  # bob (5 000) -> carol
        produce(s, req)
        bob_task = task_of(c, "bob", req.requisition_id)
        assert bob_task["amount"] == "6000.00" and bob_task["level"] == 1
        assert bob_task["requester"] == "alice" and bob_task["due_at"]
        assert inbox(c, "carol", req.requisition_id) == []

        # The workflow's validator answers: wrong user, missing comment.
        problem = decide(c, "carol", bob_task["task_id"], status=403)
        assert problem["status"] == 403 and problem["type"] == "forbidden"
        problem = decide(c, "bob", bob_task["task_id"], "reject", status=422)
        assert problem["errors"][0]["path"] == "comment"
        assert decide(c, "bob", bob_task["task_id"], "maybe", status=422)["errors"][0]["path"] == "decision"
        assert decide(c, "bob", "no-such-task", status=404)["status"] == 404

        out = decide(c, "bob", bob_task["task_id"])
        assert out["status"] == "approved" and out["by"] == "bob"
        assert decide(c, "bob", bob_task["task_id"], status=409)["status"] == 409
        carol_task = task_of(c, "carol", req.requisition_id)
        assert carol_task["level"] == 2
        decide(c, "carol", carol_task["task_id"], comment="fine")

        [event] = decided_events(reader, req.requisition_id)
        data = ApprovalDecided.model_validate(event.data)
        assert data.outcome == "approved" and data.decided_by == ["bob", "carol"]
        assert data.policy_version == 1 and data.submission == 1
        assert event.correlation_id == req.requisition_id
        assigned = [e for e in reader.envelopes() if e.type == ApprovalTaskAssigned.ce_type
                    and e.subject == req.requisition_id]
        assert [e.data["assignee"] for e in assigned] == ["bob", "carol"]

        view = c.get(f"/approvals/{req.requisition_id}", headers=bearer("alice", "requester")).json()
        assert view["status"] == "approved" and view["policy_version"] == 1
        assert [st["status"] for st in view["steps"]] == ["approved", "approved"]
        assert view["steps"][1]["decisions"][0]["comment"] == "fine"
        assert {"submitted", "task_assigned", "decision", "approved"} <= {h["kind"] for h in view["history"]}
        assert c.get(f"/approvals/{req.requisition_id}",
                     headers=bearer("mallory", "requester")).status_code == 403
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["temporal"] == "ok"
        metrics = c.get("/metrics").text
        assert 'p2p_approval_decisions_total{outcome="approved"}' in metrics
        assert "p2p_approval_tasks_open" in metrics and "p2p_approval_cycle_seconds_count" in metrics
    reader.close()


def test_auto_approval_duplicates_and_cancellation(approval_settings):
    s = approval_settings
    reader = TopicReader(s, s.topic("p2p.approvals"))
    with run_service(create_app, s) as svc:
        c = svc.client
        small = submitted("100.00", currency="USD")
        produce(s, small)
        [auto] = decided_events(reader, small.requisition_id)
        assert auto.data["decided_by"] == ["policy"] and auto.data["outcome"] == "approved"
        view = c.get(f"/approvals/{small.requisition_id}", headers=bearer("alice", "requester")).json()
        assert view["auto_approved"] and view["steps"] == []
        assert [(h["kind"], h.get("by")) for h in view["history"]] == [
            ("submitted", None), ("approved", ["policy"])]

        # The same submission delivered twice (new event ids) and redelivered (same id).
        dup = submitted("2000.00")
        first = produce(s, dup)
        second = produce(s, dup)
        produce(s, dup, event_id=first.id)
        late = produce(s, small)  # a late duplicate of a decided submission changes nothing
        engine = service_engine(s, "approvals")

        def handled() -> bool:
            with engine.connect() as conn:
                seen = set(conn.execute(text("SELECT event_id FROM inbox WHERE consumer = :c"),
                                        {"c": "approvals.requisitions"}).scalars())
            return {first.id, second.id, late.id} <= seen
        wait_until(handled, 30, message="every delivery handled")
        task = task_of(c, "bob", dup.requisition_id)
        with engine.connect() as conn:
            workflows = conn.execute(text("SELECT count(*) FROM approvals WHERE requisition_id = :r"),
                                     {"r": dup.requisition_id}).scalar_one()
            tasks = conn.execute(text("SELECT count(*) FROM approval_tasks WHERE requisition_id = :r"),
                                 {"r": dup.requisition_id}).scalar_one()
        engine.dispose()
        assert workflows == 1 and tasks == 1
        description = svc.runtime.extras["approvals"].call(
            svc.runtime.extras["temporal"].get_workflow_handle(
                f"requisition-approval-{dup.requisition_id}").describe())
        assert description.status.name == "RUNNING"
        assert len(decided_events(reader, small.requisition_id)) == 1

        produce(s, RequisitionCancelled(requisition_id=dup.requisition_id, cancelled_by="alice",
                                        reason="no longer needed", cancelled_at=datetime.now(UTC)))
        wait_until(lambda: c.get(f"/approvals/{dup.requisition_id}", headers=bearer("bob", "approver"))
                   .json()["status"] == "cancelled", 30, message="approval cancelled")
        assert inbox(c, "bob", dup.requisition_id) == []
        assert decide(c, "bob", task["task_id"], status=409)["status"] == 409
        assert not [e for e in reader.envelopes() if e.subject == dup.requisition_id
                    and e.type == ApprovalDecided.ce_type]
    reader.close()


def test_worker_restart_mid_approval_then_completion(approval_settings):
    s = approval_settings
    reader = TopicReader(s, s.topic("p2p.approvals"))
    req = submitted("60000.00", category="IT")  # bob -> carol -> dana -> ivan (it-review)
    with run_service(create_app, s) as svc:
        produce(s, req)
        decide(svc.client, "bob", task_of(svc.client, "bob", req.requisition_id)["task_id"])
        task_of(svc.client, "carol", req.requisition_id)
    # The service (and its worker) is gone; a new process picks the workflow up.
    with run_service(create_app, s) as svc:
        c = svc.client
        decide(c, "carol", task_of(c, "carol", req.requisition_id)["task_id"])
        decide(c, "dana", task_of(c, "dana", req.requisition_id)["task_id"])
        decide(c, "ivan", task_of(c, "ivan", req.requisition_id)["task_id"], "request_changes",
               "which model?")
        [event] = decided_events(reader, req.requisition_id)
        assert event.data["outcome"] == "changes_requested"
        assert event.data["decided_by"] == ["ivan"] and event.data["comment"] == "which model?"
        # The resubmission gets its own workflow (requisition-approval-<id>-2).
        produce(s, submitted("60000.00", req_id=req.requisition_id, submission=2))
        view = wait_until(lambda: (v := c.get(f"/approvals/{req.requisition_id}",
                                              headers=bearer("alice", "requester")).json())
                          ["submission"] == 2 and v, 30)
        assert view["workflow_id"] == f"requisition-approval-{req.requisition_id}-2"
        assert view["status"] == "pending"
        first = c.get(f"/approvals/{req.requisition_id}?submission=1",
                      headers=bearer("alice", "requester")).json()
        assert first["status"] == "changes_requested" and first["decided_by"] == ["ivan"]
        assert [st["status"] for st in first["steps"]] == ["approved"] * 3 + ["changes_requested"]
    reader.close()


def test_delegation_reassign_policy_and_preview(approval_settings):
    s = approval_settings
    with run_service(create_app, s) as svc:
        c = svc.client
        admin = bearer("root", "admin")
        # Policy: current version, validation with paths, new version.
        got = c.get("/policy", headers=bearer("alice", "requester")).json()
        assert got["version"] == 1 and len(got["policy"]["users"]) >= 12
        assert c.put("/policy", content=b"{}", headers={**bearer("bob", "approver"),
                     "content-type": "application/json"}).status_code == 403
        bad = ("base_currency: EUR\nusers:\n  - {id: a, name: A, manager: b}\n"
               "  - {id: b, name: B, manager: a}\n")
        r = c.put("/policy", content=bad, headers={**admin, "content-type": "application/yaml"})
        assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "manager_cycle"
        assert c.put("/policy", content=b"x: [", headers={**admin, "content-type": "application/yaml"}).status_code == 400
        bomb = b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
        assert c.put("/policy", content=bomb, headers={**admin, "content-type": "application/yaml"}).status_code == 400
        assert c.put("/policy", content=b"a", headers={**admin, "content-type": "text/plain"}).status_code == 415
        doc = got["policy"] | {"auto_approve_below": "1000.00"}
        r = c.put("/policy", json=doc, headers=admin)
        assert r.status_code == 201 and r.json()["version"] == 2

        body = {"cost_center": "CC-100", "currency": "EUR",
                "lines": [{"description": "x", "category": "IT", "quantity": "2", "unit_price": "3000"}]}
        p = c.post("/approvals/preview", json=body, headers=bearer("alice", "requester")).json()
        assert p["policy_version"] == 2 and not p["auto_approved"]
        assert [st["approvers"] for st in p["steps"]] == [["bob"], ["carol"], ["ivan"]]
        p = c.post("/approvals/preview", json=body | {"currency": "JPY"},
                   headers=bearer("alice", "requester"))
        assert p.status_code == 422 and p.json()["errors"][0]["path"] == "currency"

        # Delegation: bob is away, ivan sees and decides bob's task on his behalf.
        req = submitted("3000.00")
        produce(s, req)
        task = task_of(c, "bob", req.requisition_id)
        now = datetime.now(UTC)
        r = c.put("/delegations/me", json={"delegate_to": "nobody", "starts_at": now.isoformat(),
                                           "ends_at": (now + timedelta(days=1)).isoformat()},
                  headers=bearer("bob", "approver"))
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "delegate_to"
        r = c.put("/delegations/me", json={"delegate_to": "ivan",
                                           "starts_at": (now - timedelta(minutes=1)).isoformat(),
                                           "ends_at": (now + timedelta(days=1)).isoformat()},
                  headers=bearer("bob", "approver"))
        assert r.status_code == 200, r.text
        [seen] = inbox(c, "ivan", req.requisition_id)
        assert seen["task_id"] == task["task_id"] and seen["on_behalf_of"] == "bob"
        out = decide(c, "ivan", task["task_id"])
        assert out["on_behalf_of"] == "bob"
        view = wait_until(lambda: (v := c.get(f"/approvals/{req.requisition_id}", headers=admin).json())
                          ["status"] == "approved" and v, 30)
        assert view["steps"][0]["decisions"][0] | {"at": None} == {
            "by": "ivan", "on_behalf_of": "bob", "decision": "approve", "comment": None,
            "at": None, "task_id": task["task_id"]}
        assert view["policy_version"] == 2  # submitted after the PUT
        # A task assigned while bob is away is announced to his delegate.
        reader = TopicReader(s, s.topic("p2p.approvals"))
        req3 = submitted("1500.00")
        produce(s, req3)
        [announced] = wait_until(lambda: [e for e in reader.envelopes()
                                          if e.type == ApprovalTaskAssigned.ce_type
                                          and e.subject == req3.requisition_id], 30)
        assert (announced.data["assignee"], announced.data["on_behalf_of"]) == ("ivan", "bob")
        reader.close()
        assert c.delete("/delegations/me", headers=bearer("bob", "approver")).status_code == 204
        assert inbox(c, "ivan", req3.requisition_id) == []
        assert inbox(c, "bob", req3.requisition_id)[0]["on_behalf_of"] is None
        assert c.delete("/delegations/me", headers=bearer("bob", "approver")).status_code == 404

        # Reassign: only the assignee or an admin; the new assignee's inbox gets it.
        req2 = submitted("3000.00", cc="CC-200")  # gina
        produce(s, req2)
        t2 = task_of(c, "gina", req2.requisition_id)
        r = c.post(f"/tasks/{t2['task_id']}/reassign", json={"to": "hugo", "comment": "x"},
                   headers=bearer("bob", "approver"))
        assert r.status_code == 403
        r = c.post(f"/tasks/{t2['task_id']}/reassign", json={"to": "hugo", "comment": "holiday"},
                   headers=bearer("gina", "approver"))
        assert r.status_code == 200, r.text
        assert inbox(c, "gina", req2.requisition_id) == []
        assert inbox(c, "hugo", req2.requisition_id)[0]["task_id"] == t2["task_id"]
