"""Plays a plan against a running stack over HTTP only, phase by phase, documents in parallel
within a phase: suppliers → requisitions → approvals (inbox, decisions, a delegation, edits
and resubmissions, a cancellation) → purchase orders → receipts → invoices in every format →
late receipts → AP clerks on the exception queue → final states for the report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.cli.demo import documents as docs
from shared.cli.demo import scenario as sc
from shared.cli.demo.client import Api, ApiError, DeadlineExceeded, poll
from shared.cli.demo.world import World, load_yaml, world_from_documents

ADMIN = ("demo-admin", ("admin",))
RECEIVER = ("dock-rita", ("receiver",))
INTAKE = ("peppol-access-point", ("integration",))
CLERKS = ("paula", "omar")
SETTLED_REQ = {"approved", "ordered", "partially_received", "received", "rejected", "cancelled"}
ORDERED_REQ = {"approved", "ordered", "partially_received", "received"}
IN_FLIGHT_INVOICE = {"received", "matching"}
FINAL_INVOICE = {"cleared_for_payment", "rejected"}


@dataclass
class PoRun:
    plan: sc.PoPlan
    requisition: ReqRun
    number: str = ""
    lines: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""


@dataclass
class InvoiceRun:
    po: PoRun | None
    doc: docs.InvoiceDoc
    fmt: str
    role: str  # original | suspect_duplicate | exact_duplicate | credit_note
    fault: str
    id: str | None = None
    status: str = ""
    refused: str | None = None  # why intake refused it (e.g. duplicate)
    flags: list[str] = field(default_factory=list)
    view: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReqRun:
    plan: sc.RequisitionPlan
    id: str = ""
    status: str = "draft"
    resubmitted: bool = False
    cancel_sent: bool = False
    levels: int | None = None
    pos: list[PoRun] = field(default_factory=list)
    view: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """Everything the report needs."""

    plan: sc.Plan
    world: World
    requisitions: list[ReqRun]
    invoices: list[InvoiceRun]
    exceptions: dict[str, dict[str, Any]]
    decisions: dict[str, int]
    delegated_decisions: int
    problems: list[str]
    started: float
    finished: float
    api_calls: int
    links: list[tuple[str, str]]


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


class DemoRun:
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
        """Receive goods lines: `half` of what is ordered, or the `rest` still open."""
        lines = []
        for line in po.lines:
            if not line.get("receipt_required", True):
                continue
            ordered = Decimal(line["ordered_quantity"])
            received = Decimal(line.get("received_quantity") or "0")
            qty = (ordered / 2).to_integral_value(ROUND_FLOOR) if share == "half" \
                else ordered - received
            if qty > 0:
                lines.append({"line_no": line["line_no"], "quantity": str(qty)})
        if not lines:
            return
        out = self.api.post("requisitions", f"/purchase-orders/{po.number}/receipts",
                            user=RECEIVER[0], roles=RECEIVER[1],
                            json={"lines": lines, "note": f"delivery note DN-{self.tag}"})
        po.lines = out["purchase_order"]["lines"]
        po.status = out["purchase_order"]["status"]

    def all_pos(self) -> list[PoRun]:
        return [po for r in self.reqs for po in r.pos]

    def receive_before_invoices(self) -> None:
        todo = [po for po in self.all_pos()
                if po.plan.receipt in (sc.FULL, sc.PARTIAL_THEN_REST, sc.PARTIAL_ONLY)]
        self._task("receipts", "goods receipts", len(todo))
        for po in todo:
            self._receive(po, "rest" if po.plan.receipt == sc.FULL else "half")
            self._advance("receipts")

    def receive_late(self) -> None:
        late = [po for po in self.all_pos() if po.plan.receipt in (sc.LATE, sc.PARTIAL_THEN_REST)]
        self._task("late", "late receipts", len(late))
        for po in late:
            self._receive(po, "rest")
            self._advance("late")
        waiting = [i for i in self.invoices if i.id and i.po in late]
        self.settle("invoices after late receipts", waiting,
                    until=lambda s: s not in IN_FLIGHT_INVOICE | {"awaiting_receipt"})

    # -- invoices -------------------------------------------------------------------------------
    def _invoice_doc(self, po: PoRun) -> docs.InvoiceDoc:
        p = po.plan.invoice
        supplier = self.suppliers[po.plan.supplier_id]
        lines: list[docs.DocLine] = []
        for i, line in enumerate(po.lines, start=1):
            qty = Decimal(line["ordered_quantity"])
            if po.plan.receipt == sc.PARTIAL_ONLY and line.get("receipt_required", True):
                qty = Decimal(line.get("received_quantity") or "0")  # bills what was shipped
            if qty <= 0:
                continue
            price = Decimal(line["unit_price"])
            if not lines:  # faults go on the first billed line
                price = (price * p.price_factor).quantize(docs.CENT, ROUND_HALF_UP) \
                    if p.price_factor != 1 else price
                if p.fault == sc.OVER_BILLED:
                    qty = max(qty + 1, (qty * Decimal("1.2")).to_integral_value(ROUND_CEILING))
            lines.append(docs.DocLine(str(len(lines) + 1), line["description"], qty, price,
                                      line.get("uom") or "EA", str(line["line_no"])))
        del i
        order_ref: str | None = po.number
        if p.fault == sc.NO_PO:
            order_ref = None
        elif p.fault == sc.WRONG_PO:
            other = self.reqs[p.wrong_po_from].pos if p.wrong_po_from is not None else []
            order_ref = next((o.number for o in other
                              if o.plan.supplier_id != supplier.id), None)
        issue = self.plan.day(p.issue_day)
        return docs.InvoiceDoc(
            number=f"{p.number[:3]}{self.tag}{p.number[3:]}", issue_date=issue,
            currency=po.requisition.plan.currency, supplier=supplier, lines=tuple(lines),
            order_reference=order_ref, due_date=issue + timedelta(days=30),
            tax_rate=docs.tax_rate_for(supplier))

    def prepare_invoices(self) -> None:
        for po in self.all_pos():
            doc = self._invoice_doc(po) if po.lines else None
            if doc is None or not doc.lines:
                continue
            inv = InvoiceRun(po, doc, po.plan.invoice.format, "original", po.plan.invoice.fault)
            self.invoices.append(inv)
            if po.plan.invoice.fault == sc.EXACT_DUP:
                self.invoices.append(InvoiceRun(po, doc, inv.fmt, "exact_duplicate", inv.fault))
            elif po.plan.invoice.fault == sc.SUSPECT_DUP:
                again = doc.renumbered(f"{doc.number}-B", doc.issue_date + timedelta(days=2))
                self.invoices.append(InvoiceRun(po, again, "json", "suspect_duplicate",
                                                inv.fault))
        self._task("invoices", "invoices sent", len(self.invoices))

    def send_invoices(self, misdirected: bool) -> None:
        """Genuine invoices first (CSV ones in one batch file); invoices quoting a wrong or no
        PO and second copies at the end of the month, once the genuine ones are matched and
        received: matching counts their quantities against the PO they quote."""
        def late(inv: InvoiceRun) -> bool:
            return inv.fault in (sc.WRONG_PO, sc.NO_PO) or inv.role == "suspect_duplicate"

        todo = [i for i in self.invoices if late(i) == misdirected and not i.id
                and not i.refused]
        batch = [i for i in todo if i.fmt == "csv" and i.role == "original"]
        self._post_batch(batch)
        in_batch = {id(i) for i in batch}
        for inv in todo:
            if id(inv) in in_batch:
                continue
            if inv.fmt == "csv":  # a CSV file of its own
                self._post_batch([inv])
            else:
                self._post_one(inv)

    def _post_one(self, inv: InvoiceRun) -> None:
        body, content_type = docs.encode(inv.doc, inv.fmt)
        try:
            out = self.api.post("invoices", "/invoices", user=INTAKE[0], roles=INTAKE[1],
                                content=body, content_type=content_type)
        except ApiError as exc:
            if exc.status == 409 and inv.role == "exact_duplicate":
                inv.refused = "duplicate"
            else:
                inv.refused = f"{exc.status}"
                self._problem(f"invoice {inv.doc.number} ({inv.fmt}) refused: {exc}")
            self._advance("invoices")
            return
        inv.id, inv.status, inv.flags = out["id"], out["status"], out.get("flags") or []
        self._advance("invoices")

    def _post_batch(self, batch: list[InvoiceRun]) -> None:
        if not batch:
            return
        out = self.api.post("invoices", "/invoices/batch", user=INTAKE[0], roles=INTAKE[1],
                            content=docs.to_csv([i.doc for i in batch]).encode(),
                            content_type="text/csv")
        by_number = {r.get("invoice_number"): r for r in out.get("results") or []}
        for inv in batch:
            result = by_number.get(inv.doc.number) or {}
            if result.get("outcome") == "created":
                inv.id, inv.flags = result["id"], result.get("flags") or []
            elif result.get("outcome") == "duplicate" and inv.role == "exact_duplicate":
                inv.refused = "duplicate"
            else:
                inv.refused = result.get("outcome") or "missing"
                self._problem(f"CSV invoice {inv.doc.number} not created: {result}")
            self._advance("invoices")

    def _refresh_invoice(self, inv: InvoiceRun) -> str:
        inv.view = self.api.get("invoices", f"/invoices/{inv.id}", user=CLERKS[0],
                                roles=("ap_clerk",))
        inv.status = inv.view["status"]
        return inv.status

    def settle(self, label: str, invoices: list[InvoiceRun],
               until: Callable[[str], bool] = lambda s: s not in IN_FLIGHT_INVOICE) -> None:
        key = f"settle:{label}"
        self._task(key, label, len(invoices))

        def settled() -> bool:
            open_ = [i for i in invoices if not until(i.status) or not i.status]
            for inv in open_:
                self._refresh_invoice(inv)
            done = sum(1 for i in invoices if until(i.status))
            self._set(key, done)
            return done == len(invoices)

        self._poll(settled, label)

    # -- AP clerks ------------------------------------------------------------------------------
    @staticmethod
    def clerk_action(reasons: list[str], first_look: bool = True) -> tuple[str, str, str]:
        """What an AP clerk does with an exception, by its reasons: (action, reason code,
        comment). On the first look a quantity short of receipts is matched again (the goods
        may have arrived since); what is still wrong afterwards is settled for good."""
        r = set(reasons)
        if "DUPLICATE_SUSPECTED" in r:
            return "reject", "DUPLICATE", "Same amount and a near-identical number: a duplicate."
        if r & {"PO_NOT_FOUND", "SUPPLIER_MISMATCH", "CURRENCY_MISMATCH", "LINE_NOT_ON_PO",
                "PO_CLOSED"}:
            return "reject", "WRONG_PO", "Not our order: returned to the supplier."
        if "QTY_OVER_ORDERED" in r:
            return "request_credit_note", "OVERBILLED", "Billed more than ordered."
        if r & {"QTY_OVER_RECEIVED", "MISSING_RECEIPT"}:
            if first_look:
                return "rematch", "RECEIPT_POSTED", "Goods received since; matching again."
            return "request_credit_note", "NOT_DELIVERED", "Billed more than was delivered."
        return "accept", "PRICE_AGREED", "Price increase confirmed by the buyer."

    def _clerk_decision(self, exc: dict[str, Any], inv: InvoiceRun,
                        first_look: bool) -> tuple[str, str, str]:
        action, code, comment = self.clerk_action(exc.get("reasons") or [], first_look)
        if action == "request_credit_note" and not self._bills_beyond_po(inv):
            # This invoice alone fits the PO: the excess is another invoice's, which the clerk
            # rejects in the same pass; matching this one again then clears it.
            return "rematch", "OTHER_INVOICE", "The excess was on another invoice; rematching."
        return action, code, comment

    @staticmethod
    def _bills_beyond_po(inv: InvoiceRun) -> bool:
        if inv.po is None:
            return True
        ordered = {str(ln["line_no"]): Decimal(ln["ordered_quantity"]) for ln in inv.po.lines}
        return any(line.quantity > ordered.get(line.po_line_no or "", line.quantity - 1)
                   for line in inv.doc.lines)

    def _our_exceptions(self, status: str) -> list[dict[str, Any]]:
        ours = {i.id: i for i in self.invoices if i.id}
        items = self.api.pages("matching", "/exceptions", params={"status": status},
                               user=CLERKS[0], roles=("ap_clerk",))
        return [e for e in items if e["invoice_id"] in ours]

    def resolve_exceptions(self) -> None:
        if "exceptions" not in self.tasks:
            self._task("exceptions", "exceptions resolved", 0)
            self._exceptions_seen = 0
        total = self._exceptions_seen
        for look in (1, 2):
            # A rematch that still fails keeps its exception open with the remaining reasons:
            # the second look takes every open one again.
            open_ = self._our_exceptions("open")
            if not open_:
                break
            total += len(open_)
            self._set("exceptions", total - len(open_), total)
            credit_notes: list[tuple[dict[str, Any], InvoiceRun]] = []
            ours = {i.id: i for i in self.invoices if i.id}
            decided = [(exc, self._clerk_decision(exc, ours[exc["invoice_id"]], look == 1))
                       for exc in open_]
            # Rejections first: a rejected invoice stops counting against its PO, which may be
            # all another invoice on that PO needs.
            decided.sort(key=lambda pair: pair[1][0] != "reject")
            for n, (exc, (action, code, comment)) in enumerate(decided):
                self.exceptions[exc["id"]] = exc
                clerk = CLERKS[n % len(CLERKS)]
                self.api.post("matching", f"/exceptions/{exc['id']}/assign", user=clerk,
                              roles=("ap_clerk",), json={"assignee": clerk})
                try:
                    out = self.api.post("matching", f"/exceptions/{exc['id']}/resolve",
                                        user=clerk, roles=("ap_clerk",),
                                        json={"action": action, "reason_code": code,
                                              "comment": comment})
                    self.exceptions[exc["id"]] = out
                except ApiError as err:
                    self._problem(str(err))
                if action == "request_credit_note":
                    credit_notes.append((exc, ours[exc["invoice_id"]]))
                self._advance("exceptions")
            # Suppliers answer credit-note requests; the invoice is then matched again.
            for exc, inv in credit_notes:
                self._credit_note_for(exc, inv)
            self._exceptions_seen = total
            self.settle("invoices after the AP clerks", [i for i in self.invoices if i.id])

    def _credit_note_for(self, exc: dict[str, Any], inv: InvoiceRun) -> None:
        if inv.po is None:
            return
        ordered = {str(line["line_no"]): Decimal(line["ordered_quantity"])
                   for line in inv.po.lines}
        lines = []
        for line in inv.doc.lines:
            excess = line.quantity - ordered.get(line.po_line_no or "", line.quantity)
            if excess > 0:
                lines.append(docs.DocLine(str(len(lines) + 1), line.description, excess,
                                          line.unit_price, line.uom, line.po_line_no))
        if not lines:
            return
        doc = docs.InvoiceDoc(number=f"CN{inv.doc.number}", issue_date=inv.doc.issue_date
                              + timedelta(days=3), currency=inv.doc.currency,
                              supplier=inv.doc.supplier, lines=tuple(lines),
                              order_reference=inv.doc.order_reference, type="credit_note",
                              preceding_invoice=inv.doc.number, tax_rate=inv.doc.tax_rate)
        cn = InvoiceRun(inv.po, doc, "ubl", "credit_note", inv.fault)
        self.invoices.append(cn)
        if self.progress is not None and "invoices" in self.tasks:
            self.progress.update(self.tasks["invoices"], total=len(self.invoices))
        self._post_one(cn)
        if cn.id:
            self.settle(f"credit note {doc.number[-6:]}", [cn])
        clerk = CLERKS[0]
        current = self.api.get("matching", f"/exceptions/{exc['id']}", user=clerk,
                               roles=("ap_clerk",))
        if current["status"] == "resolved":  # matching re-ran it when the credit note came
            self.exceptions[exc["id"]] = current
            return
        try:
            out = self.api.post("matching", f"/exceptions/{exc['id']}/resolve", user=clerk,
                                roles=("ap_clerk",),
                                json={"action": "rematch", "reason_code": "CREDIT_NOTE_RECEIVED",
                                      "comment": f"credit note {doc.number} received"})
            self.exceptions[exc["id"]] = out
        except ApiError as err:
            self._problem(f"rematch after credit note: {err}")

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
