"""Plays a plan against a running stack over HTTP only, phase by phase, documents in parallel
within a phase: suppliers → requisitions → approvals (inbox, decisions, a delegation, edits
and resubmissions, a cancellation) → purchase orders → receipts → invoices in every format →
late receipts → AP clerks on the exception queue → final states for the report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.cli.demo import scenario as sc
from shared.cli.demo.clerks import ApClerks
from shared.cli.demo.client import Api, ApiError, DeadlineExceeded, poll
from shared.cli.demo.invoicing import Invoicing
from shared.cli.demo.state import (
    ADMIN,
    CLERKS,
    IN_FLIGHT_INVOICE,
    ORDERED_REQ,
    RECEIVER,
    SETTLED_REQ,
    InvoiceRun,
    Outcome,
    PoRun,
    ReqRun,
)
from shared.cli.demo.world import World, load_yaml, world_from_documents

__all__ = ["DemoRun", "Outcome", "load_world", "previous_month_start"]


def load_world(api: Api) -> World:
    """The policy and tolerances the running stack uses; the deploy/ files if it cannot say."""
    settings = api.settings
    try:
        policy = api.get("approvals", "/policy", user=ADMIN[0], roles=ADMIN[1])
        policy_doc, policy_version = policy["policy"], policy.get("version")
    except ApiError:
        policy_doc, policy_version = load_yaml(settings.approval_policy), None
    try:
        tol = api.get("matching", "/tolerances", user=ADMIN[0], roles=ADMIN[1])
        tol_doc, tol_version = tol["policy"], tol.get("version")
    except ApiError:
        tol_doc, tol_version = load_yaml(settings.tolerances), None
    return world_from_documents(policy_doc, tol_doc, policy_version=policy_version,
                                tolerance_version=tol_version)


def previous_month_start(today: date | None = None) -> date:
    first = (today or date.today()).replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


class DemoRun(Invoicing, ApClerks):
    def __init__(self, api: Api, plan: sc.Plan, world: World, console: Console,
                 phase_timeout: float = 90.0) -> None:
        self.api = api
        self.plan = plan
        self.world = world
        self.console = console
        self.timeout = phase_timeout
        self.tag = os.urandom(3).hex().upper()  # keeps document numbers unique per run
        self.reqs = [ReqRun(p) for p in plan.requisitions]
        self.by_id: dict[str, ReqRun] = {}
        self.invoices: list[InvoiceRun] = []
        self.exceptions: dict[str, dict[str, Any]] = {}
        self.decisions: dict[str, int] = {}
        self.delegated = 0
        self.problems: list[str] = []
        self.suppliers = {s.id: s for s in world.suppliers}
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self._exceptions_seen = 0

    # -- plumbing -----------------------------------------------------------------------------
    def _problem(self, what: str) -> None:
        self.problems.append(what)

    def _task(self, key: str, label: str, total: int) -> None:
        assert self.progress is not None
        if key in self.tasks:  # a phase that comes round again reuses its bar
            self.progress.reset(self.tasks[key], total=max(total, 1))
        else:
            self.tasks[key] = self.progress.add_task(label, total=max(total, 1))
        if total == 0:
            self.progress.update(self.tasks[key], completed=1)

    def _advance(self, key: str, n: int = 1) -> None:
        if self.progress is not None and key in self.tasks:
            self.progress.advance(self.tasks[key], n)

    def _set(self, key: str, completed: int, total: int | None = None) -> None:
        if self.progress is not None and key in self.tasks:
            self.progress.update(self.tasks[key], completed=completed,
                                 **({"total": max(total, 1)} if total is not None else {}))

    def _poll(self, predicate: Callable[[], Any], what: str, timeout: float | None = None) -> bool:
        try:
            poll(predicate, timeout=timeout or self.timeout, interval=0.3, what=what)
            return True
        except DeadlineExceeded as exc:
            self._problem(str(exc))
            return False

    # -- the month ----------------------------------------------------------------------------
    def run(self) -> Outcome:
        started = time.time()
        columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            self.progress = progress
            self.seed_suppliers()
            self.raise_requisitions()
            self.approve()
            self.collect_purchase_orders()
            self.receive_before_invoices()
            self.prepare_invoices()
            self.send_invoices(misdirected=False)
            self.settle("invoices matched", [i for i in self.invoices if i.id])
            self.receive_late()
            self.resolve_exceptions()
            self.send_invoices(misdirected=True)
            self.settle("misdirected invoices matched", [i for i in self.invoices if i.id])
            self.resolve_exceptions()
            self.settle("final invoice states", [i for i in self.invoices if i.id],
                        until=lambda s: s not in IN_FLIGHT_INVOICE)
            self.refresh_documents()
        return Outcome(self.plan, self.world, self.reqs, self.invoices, self.exceptions,
                       self.decisions, self.delegated, self.problems, started, time.time(),
                       self.api.calls, self.links())

    def links(self) -> list[tuple[str, str]]:
        s, host = self.api.settings, self.api.host
        out = [(f"{svc} API docs", f"{self.api.base_url(svc)}/docs")
               for svc in ("requisitions", "approvals", "invoices", "matching")]
        out.append(("Temporal UI (approval workflows)", f"http://{host}:{s.temporal_ui_port}"))
        out += [(f"{svc} metrics", f"{self.api.base_url(svc)}/metrics")
                for svc in ("requisitions", "approvals", "invoices", "matching")]
        return out

    # -- suppliers ----------------------------------------------------------------------------
    def seed_suppliers(self) -> None:
        self._task("suppliers", "suppliers seeded", len(self.world.suppliers))
        for supplier in self.world.suppliers:
            self.api.request("requisitions", "POST", "/suppliers", user=ADMIN[0], roles=ADMIN[1],
                             json=supplier.as_request(), ok=(201, 409))  # 409: already there
            self._advance("suppliers")

    # -- requisitions and approvals -------------------------------------------------------------
    def _req_body(self, plan: sc.RequisitionPlan, lines: tuple[sc.LinePlan, ...]) -> dict:
        return {
            "title": plan.title, "cost_center": plan.cost_center, "currency": plan.currency,
            "needed_by": self.plan.day(plan.day + 14).isoformat(),
            "justification": plan.justification,
            "lines": [{"description": ln.description, "category": ln.category,
                       "quantity": str(ln.quantity), "uom": ln.uom,
                       "unit_price": str(ln.unit_price), "supplier_id": ln.supplier_id,
                       "receipt_required": ln.receipt_required} for ln in lines],
        }

    def raise_requisitions(self) -> None:
        self._task("raised", "requisitions raised", len(self.reqs))
        for r in self.reqs:
            who = (r.plan.requester, ("requester",))
            created = self.api.post("requisitions", "/requisitions", user=who[0], roles=who[1],
                                    json=self._req_body(r.plan, r.plan.lines))
            r.id = created["id"]
            self.by_id[r.id] = r
            submitted = self.api.post("requisitions", f"/requisitions/{r.id}/submit",
                                      user=who[0], roles=who[1])
            r.status = submitted.get("status", "pending_approval")
            self._advance("raised")

    def _refresh_req(self, r: ReqRun) -> None:
        r.view = self.api.get("requisitions", f"/requisitions/{r.id}", user=r.plan.requester,
                              roles=("requester",))
        r.status = r.view["status"]

    def _levels(self, r: ReqRun) -> int:
        if r.levels is None:
            view = self.api.get("approvals", f"/approvals/{r.id}", user=ADMIN[0], roles=ADMIN[1])
            r.levels = max([s.get("level", 0) for s in view.get("steps") or []] or [1])
        return r.levels

    def _decision_for(self, r: ReqRun, level: int) -> tuple[str, str | None]:
        p = r.plan
        if p.approval == sc.CANCEL:
            return "cancel", None
        if p.approval == sc.REJECT and level >= min(p.decide_level, self._levels(r)):
            return "reject", "Not in this quarter's budget; please re-plan next quarter."
        if p.approval == sc.CHANGES and not r.resubmitted:
            return "request_changes", "Quantities look high; please trim to what is needed now."
        return "approve", None

    def _edit_and_resubmit(self, r: ReqRun) -> None:
        # Trim the largest line by about a fifth, as the approver asked, then resubmit.
        lines = list(r.plan.lines)
        big = max(range(len(lines)), key=lambda i: lines[i].amount)
        q = lines[big].quantity
        trimmed = max(Decimal(1), (q * Decimal("0.8")).to_integral_value(ROUND_FLOOR))
        lines[big] = sc.LinePlan(**{**lines[big].__dict__, "quantity": trimmed})
        who = (r.plan.requester, ("requester",))
        body = self._req_body(r.plan, tuple(lines))
        body["justification"] = f"{r.plan.justification} (quantities trimmed after review)"
        self.api.request("requisitions", "PATCH", f"/requisitions/{r.id}", user=who[0],
                         roles=who[1], json=body)
        self.api.post("requisitions", f"/requisitions/{r.id}/submit", user=who[0], roles=who[1])
        r.resubmitted = True
        r.status = "pending_approval"

    def approve(self) -> None:
        pending = {r.id: r for r in self.reqs if r.status == "pending_approval"}
        self._task("approvals", "approvals settled", len(self.reqs))
        self._set("approvals", len(self.reqs) - len(pending))
        approvers = [p.id for p in self.world.people]
        delegation = self.plan.delegation
        delegation_on = False
        if delegation:
            now = datetime.now(UTC)
            self.api.request("approvals", "PUT", "/delegations/me", user=delegation.delegator,
                             roles=("approver",),
                             json={"delegate_to": delegation.delegate,
                                   "starts_at": (now - timedelta(minutes=1)).isoformat(),
                                   "ends_at": (now + timedelta(hours=8)).isoformat()})
            delegation_on = True
        done_tasks: set[str] = set()
        deadline = time.monotonic() + self.timeout * 2
        iteration = 0
        while pending:
            if time.monotonic() > deadline:
                self._problem(f"{len(pending)} requisition(s) still pending approval after "
                              f"{self.timeout * 2:.0f}s: {sorted(pending)[:5]}")
                break
            iteration += 1
            touched: set[str] = set()
            for user in approvers:
                if delegation_on and user == delegation.delegator:
                    continue  # out of office: the delegate works through these tasks
                for task in self.api.pages("approvals", "/inbox", user=user, roles=("approver",)):
                    r = pending.get(task["requisition_id"])
                    if r is None or task["task_id"] in done_tasks:
                        continue
                    done_tasks.add(task["task_id"])
                    touched.add(r.id)
                    decision, comment = self._decision_for(r, int(task["level"]))
                    if decision == "cancel":
                        if not r.cancel_sent:
                            self.api.post("requisitions", f"/requisitions/{r.id}/cancel",
                                          user=r.plan.requester, roles=("requester",),
                                          json={"reason": "No longer needed: project postponed"})
                            r.cancel_sent = True
                        continue
                    body = {"decision": decision, **({"comment": comment} if comment else {})}
                    try:
                        self.api.post("approvals", f"/tasks/{task['task_id']}/decision",
                                      user=user, roles=("approver",), json=body)
                    except ApiError as exc:
                        if exc.status == 409:  # closed meanwhile (e.g. an `any` level)
                            continue
                        self._problem(str(exc))
                        continue
                    self.decisions[decision] = self.decisions.get(decision, 0) + 1
                    if task.get("on_behalf_of") or task.get("assignee") not in (None, user):
                        self.delegated += 1
            refresh = [r for r in pending.values() if r.id in touched or iteration % 3 == 0]
            for r in refresh:
                self._refresh_req(r)
                if r.status == "changes_requested":
                    self._edit_and_resubmit(r)
                elif r.status in SETTLED_REQ:
                    del pending[r.id]
            self._set("approvals", len(self.reqs) - len(pending))
            if delegation_on and len(pending) <= len(self.reqs) // 2:
                # Back from holiday halfway through the month.
                self.api.request("approvals", "DELETE", "/delegations/me",
                                 user=delegation.delegator, roles=("approver",))
                delegation_on = False
            if not touched:
                time.sleep(0.3)  # poll interval: nothing in any inbox yet
        if delegation_on:
            self.api.request("approvals", "DELETE", "/delegations/me", user=delegation.delegator,
                             roles=("approver",))

    # -- purchase orders and receipts ----------------------------------------------------------
    def collect_purchase_orders(self) -> None:
        ordered = [r for r in self.reqs if r.status in ORDERED_REQ]
        self._task("pos", "purchase orders issued", sum(len(r.plan.pos) for r in ordered))

        def all_issued() -> bool:
            count = 0
            for r in ordered:
                if len(r.view.get("purchase_orders") or []) < len(r.plan.pos):
                    self._refresh_req(r)
                count += min(len(r.view.get("purchase_orders") or []), len(r.plan.pos))
            self._set("pos", count)
            return all(len(r.view.get("purchase_orders") or []) >= len(r.plan.pos)
                       for r in ordered)

        self._poll(all_issued, "purchase orders of approved requisitions")
        for r in ordered:
            for number in r.view.get("purchase_orders") or []:
                po = self.api.get("requisitions", f"/purchase-orders/{number}",
                                  user=RECEIVER[0], roles=RECEIVER[1])
                plan = next((p for p in r.plan.pos if p.supplier_id == po["supplier_id"]), None)
                if plan is None:
                    self._problem(f"{number}: supplier {po['supplier_id']} not in the plan")
                    continue
                r.pos.append(PoRun(plan, r, number=po["number"], lines=po["lines"],
                                   status=po["status"]))

    def _receive(self, po: PoRun, share: str) -> None:
        """Receive goods lines: `half` of what is ordered, or the `rest` still open; with the
        rest, the requester also confirms the services as rendered (two-way lines need no
        receipt to match, but the requisition is only `received` when every line is)."""
        goods: list[dict[str, str]] = []
        services: list[dict[str, str]] = []
        for line in po.lines:
            service = not line.get("receipt_required", True)
            if service and share != "rest":
                continue
            ordered = Decimal(line["ordered_quantity"])
            received = Decimal(line.get("received_quantity") or "0")
            qty = (ordered / 2).to_integral_value(ROUND_FLOOR) if share == "half" \
                else ordered - received
            if qty > 0:
                (services if service else goods).append(
                    {"line_no": line["line_no"], "quantity": str(qty)})
        requester = (po.requisition.plan.requester, ("requester",))
        for lines, who, note in ((goods, RECEIVER, f"delivery note DN-{self.tag}"),
                                 (services, requester, "services rendered as ordered")):
            if not lines:
                continue
            out = self.api.post("requisitions", f"/purchase-orders/{po.number}/receipts",
                                user=who[0], roles=who[1], json={"lines": lines, "note": note})
            po.lines = out["purchase_order"]["lines"]
            po.status = out["purchase_order"]["status"]

    def all_pos(self) -> list[PoRun]:
        return [po for r in self.reqs for po in r.pos]

    def receive_before_invoices(self) -> None:
        todo = [po for po in self.all_pos() if po.plan.receipt != sc.LATE]
        self._task("receipts", "goods receipts", len(todo))
        for po in todo:
            self._receive(po, "rest" if po.plan.receipt in (sc.FULL, sc.SERVICES_ONLY)
                          else "half")
            self._advance("receipts")

    def receive_late(self) -> None:
        late = [po for po in self.all_pos() if po.plan.receipt in (sc.LATE, sc.PARTIAL_THEN_REST)]
        self._task("late", "late receipts", len(late))
        for po in late:
            self._receive(po, "rest")
            self._advance("late")
        waiting = [i for i in self.invoices if i.id and any(i.po is po for po in late)]
        self.settle("invoices after late receipts", waiting,
                    until=lambda s: s not in IN_FLIGHT_INVOICE | {"awaiting_receipt"})

    # -- final states ---------------------------------------------------------------------------
    def refresh_documents(self) -> None:
        for r in self.reqs:
            self._refresh_req(r)
            for po in r.pos:
                view = self.api.get("requisitions", f"/purchase-orders/{po.number}",
                                    user=RECEIVER[0], roles=RECEIVER[1])
                po.status = view["status"]
        for inv in self.invoices:
            if inv.id:
                self._refresh_invoice(inv)
        for exc_id in list(self.exceptions):
            self.exceptions[exc_id] = self.api.get("matching", f"/exceptions/{exc_id}",
                                                   user=CLERKS[0], roles=("ap_clerk",))
        # Exceptions raised after the clerks' pass (e.g. by a rematch) are listed too.
        for status in ("open", "waiting_supplier", "resolved"):
            for exc in self._our_exceptions(status):
                self.exceptions.setdefault(exc["id"], exc)
