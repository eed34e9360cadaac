"""A demo-sized document flow driven over HTTP only, built to survive faults.

`make_plan(seed, n)` decides everything up front (deterministic for a seed): which requisitions
are auto-approved and which need the cost center owner, which suppliers (one PO each), which
invoices arrive before their receipt and which bill a price outside tolerance. From the plan
alone follows the final state every document must reach (`Expectation`), so a run with faults
is compared with what a clean run gives without running one.

`Driver` carries the plan out against a `p2p up` stack. Every call retries connection errors and
502/503/504 until a deadline; a retried create that may already have happened is checked first
(requisitions by their unique title, receipts by the PO's received quantities) or answered 409
(suppliers, invoices, decisions, submits), which counts as done. Outcomes are polled with
deadlines, never waited for with fixed sleeps.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from shared.auth import mint_token

CENT = Decimal("0.01")
TAX_RATE = Decimal(20)
AUTO_APPROVE_BELOW = Decimal("500.00")  # deploy/approval-policy.yaml, EUR
COST_CENTER = "CC-100"                  # owner: bob (approval limit 5000 EUR)
OWNER = "bob"
REQUESTERS = ("alice", "liam")          # both report to bob, so bob is never their own approver
RECEIVER = ("res-dock", ("receiver",))
INTAKE = ("res-access-point", ("integration",))
CLERK = ("res-clerk", ("ap_clerk",))
ADMIN = ("res-admin", ("admin",))
TRANSIENT = (502, 503, 504)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Supplier:
    id: str
    name: str
    vat_id: str
    peppol_id: str

    def as_request(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "vat_id": self.vat_id,
                "peppol_id": self.peppol_id, "currency": "EUR", "identifiers": [self.peppol_id]}


SUPPLIERS = (
    Supplier("RES-ALPHA", "Alpha Bürobedarf GmbH", "DE811100001", "0088:4000001900011"),
    Supplier("RES-BETA", "Beta Facilitair BV", "NL859200001B01", "0106:30900001"),
    Supplier("RES-GAMMA", "Gamma Fournitures SARL", "FR40300000001", "0009:30000000100017"),
)


@dataclass(frozen=True)
class PlanLine:
    supplier_id: str
    description: str
    quantity: Decimal
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return money(self.quantity * self.unit_price)


@dataclass(frozen=True)
class DocPlan:
    """One requisition and everything that follows from it."""

    index: int
    title: str
    requester: str
    lines: tuple[PlanLine, ...]
    bad_price: frozenset[str]          # suppliers whose invoice bills a price out of tolerance
    invoice_first: frozenset[str]      # suppliers whose invoice arrives before the receipt

    @property
    def total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), Decimal(0))

    @property
    def needs_approval(self) -> bool:
        return self.total >= AUTO_APPROVE_BELOW

    @property
    def suppliers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ln.supplier_id for ln in self.lines))

    def lines_of(self, supplier_id: str) -> tuple[PlanLine, ...]:
        return tuple(ln for ln in self.lines if ln.supplier_id == supplier_id)

    def invoice_number(self, supplier_id: str, run: str) -> str:
        return f"RES-{run}-{self.index:03d}-{supplier_id.removeprefix('RES-')}"


@dataclass(frozen=True)
class Plan:
    seed: int
    docs: tuple[DocPlan, ...]

    def expectation(self) -> Expectation:
        exp = Expectation()
        for d in self.docs:
            exp.requisitions["received"] += 1
            exp.approvals[f"approved by {OWNER if d.needs_approval else 'policy'}"] += 1
            for s in d.suppliers:
                exp.purchase_orders["received"] += 1
                if s in d.bad_price:
                    exp.invoices["exception"] += 1
                    exp.match_outcomes["exception"] += 1
                    exp.open_exceptions += 1
                else:
                    exp.invoices["cleared_for_payment"] += 1
                    exp.match_outcomes["matched"] += 1
        return exp


@dataclass
class Expectation:
    """Counts per final status that the plan implies (what a run without faults gives)."""

    requisitions: Counter = field(default_factory=Counter)
    approvals: Counter = field(default_factory=Counter)
    purchase_orders: Counter = field(default_factory=Counter)
    invoices: Counter = field(default_factory=Counter)
    match_outcomes: Counter = field(default_factory=Counter)
    open_exceptions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"requisitions": dict(self.requisitions), "approvals": dict(self.approvals),
                "purchase_orders": dict(self.purchase_orders), "invoices": dict(self.invoices),
                "match_outcomes": dict(self.match_outcomes),
                "open_exceptions": self.open_exceptions}


ITEMS = ("A4 paper, box", "Toner cartridge", "Desk lamp", "Whiteboard markers", "Office chair",
         "Monitor arm", "Cleaning service visit", "Coffee beans 1 kg", "Standing desk",
         "Cable ties, pack")


def make_plan(seed: int, n: int, run: str, approval_share: float = 0.3,
              two_supplier_share: float = 0.25, bad_price_share: float = 0.15,
              invoice_first_share: float = 0.15) -> Plan:
    rng = random.Random(seed)
    docs = []
    used_nets: set[tuple[str, Decimal]] = set()  # (supplier, net): no suspected duplicates
    for i in range(n):
        big = rng.random() < approval_share
        suppliers = rng.sample([s.id for s in SUPPLIERS], 2 if rng.random() < two_supplier_share
                               else 1)
        # Auto-approved: total 60-440 EUR; owner's approval: 700-4200 EUR (bob's limit 5000).
        target = Decimal(rng.randint(700, 4200) if big else rng.randint(60, 440))
        lines: list[PlanLine] = []
        per_supplier = target / len(suppliers)
        for s in suppliers:
            qty = Decimal(rng.choice((1, 2, 3, 4, 5)))
            price = money(per_supplier / qty)
            # A distinct net per supplier keeps the duplicate-suspicion rule out of the way.
            while (s, money(price * qty)) in used_nets:
                price += CENT
            used_nets.add((s, money(price * qty)))
            lines.append(PlanLine(s, rng.choice(ITEMS), qty, price))
        bad = frozenset(s for s in suppliers if rng.random() < bad_price_share)
        first = frozenset(s for s in suppliers if s not in bad and rng.random() < invoice_first_share)
        docs.append(DocPlan(i, f"resilience {run} #{i:03d}", REQUESTERS[i % len(REQUESTERS)],
                            tuple(lines), bad, first))
    return Plan(seed, tuple(docs))


def invoice_body(doc: DocPlan, supplier: Supplier, po: dict[str, Any], run: str) -> dict:
    """A native JSON invoice billing `po` in full; a planned bad price is 20 % + 10 EUR over."""
    issue = date.today() - timedelta(days=1)
    lines = []
    for n, ln in enumerate(po["lines"], start=1):
        price = Decimal(ln["unit_price"])
        if supplier.id in doc.bad_price:
            price = money(price * Decimal("1.2") + 10)
        qty = Decimal(ln["ordered_quantity"])
        lines.append({"line_no": str(n), "description": ln["description"], "quantity": str(qty),
                      "uom": ln["uom"], "unit_price": str(price),
                      "net_amount": str(money(qty * price)), "po_line_no": str(ln["line_no"]),
                      "tax_rate": str(TAX_RATE)})
    net = sum((Decimal(ln["net_amount"]) for ln in lines), Decimal(0))
    tax = money(net * TAX_RATE / 100)
    return {"type": "invoice", "invoice_number": doc.invoice_number(supplier.id, run),
            "issue_date": issue.isoformat(), "due_date": (issue + timedelta(days=30)).isoformat(),
            "currency": "EUR",
            "supplier": {"id": supplier.id, "vat_id": supplier.vat_id,
                         "peppol_id": supplier.peppol_id, "name": supplier.name},
            "order_reference": po["number"], "lines": lines,
            "totals": {"net": str(net), "tax": str(tax), "gross": str(net + tax),
                       "payable": str(net + tax)}}


# -- HTTP with retries ---------------------------------------------------------------------------

class CallFailed(AssertionError):
    pass


@dataclass
class Stats:
    """What the driver met on the way: retried calls by reason, 409s taken as done."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0
    retries: Counter = field(default_factory=Counter)
    already_done: Counter = field(default_factory=Counter)

    def count(self, what: Counter, key: str) -> None:
        with self.lock:
            what[key] += 1


class Http:
    """Thread-safe: one httpx client per thread, one token per (user, roles)."""

    def __init__(self, urls: dict[str, str], deadline_s: float = 180.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.urls = urls
        self.deadline_s = deadline_s
        self.transport = transport  # tests put a scripted transport here
        self.stats = Stats()
        self._local = threading.local()
        self._tokens: dict[tuple[str, tuple[str, ...]], str] = {}
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=httpx.Timeout(20.0, connect=3.0),
                                  transport=self.transport)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        for c in self._clients:
            c.close()

    def _token(self, user: str, roles: tuple[str, ...]) -> str:
        key = (user, roles)
        with self._lock:
            if key not in self._tokens:
                self._tokens[key] = mint_token(user, list(roles))
            return self._tokens[key]

    def call(self, service: str, method: str, path: str, who: tuple[str, tuple[str, ...]], *,
             json: Any = None, params: dict | None = None, ok: tuple[int, ...] = (200, 201, 202),
             done_if: Callable[[], Any] | None = None, done_statuses: tuple[int, ...] = ()
             ) -> Any:
        """One logical call. Returns the JSON body of an `ok` answer; a `done_statuses` answer
        to a retry (the first attempt may have landed) returns that body too. `done_if` is asked
        before every retry after an ambiguous failure: a truthy answer means it already
        happened, and is returned."""
        url = f"{self.urls[service]}{path}"
        headers = {"Authorization": f"Bearer {self._token(who[0], who[1])}"}
        deadline = time.monotonic() + self.deadline_s
        attempt = 0
        backoff = 0.2
        last = ""
        while True:
            attempt += 1
            if attempt > 1 and done_if is not None:
                try:
                    found = done_if()
                except (CallFailed, httpx.HTTPError):
                    found = None
                if found:
                    self.stats.count(self.stats.already_done, f"{method} {service}")
                    return found
            try:
                with self.stats.lock:
                    self.stats.calls += 1
                r = self._client().request(method, url, headers=headers, json=json, params=params)
            except httpx.TransportError as exc:
                last = type(exc).__name__
                self.stats.count(self.stats.retries, f"{service}: {last}")
            else:
                if r.status_code in ok:
                    return r.json() if r.content else None
                if attempt > 1 and r.status_code in done_statuses:
                    self.stats.count(self.stats.already_done, f"{method} {service} {r.status_code}")
                    return r.json() if r.content else None
                if r.status_code not in TRANSIENT:
                    raise CallFailed(f"{method} {url} → {r.status_code}: {r.text[:600]}")
                last = str(r.status_code)
                self.stats.count(self.stats.retries, f"{service}: {last}")
            if time.monotonic() > deadline:
                raise CallFailed(f"{method} {url}: still failing after {self.deadline_s:.0f}s "
                                 f"({attempt} attempts, last: {last})")
            time.sleep(backoff)  # back-off between retries of a failed call
            backoff = min(backoff * 2, 2.0)

    def get(self, service: str, path: str, who: tuple[str, tuple[str, ...]], **kw: Any) -> Any:
        return self.call(service, "GET", path, who, **kw)

    def pages(self, service: str, path: str, who: tuple[str, tuple[str, ...]],
              params: dict | None = None) -> list[dict]:
        items: list[dict] = []
        query = dict(params or {}, limit=500)
        while True:
            page = self.get(service, path, who, params=query)
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["cursor"] = page["next_cursor"]

    def poll(self, what: str, fn: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
        """Poll `fn` until truthy (errors inside count as not yet); fail at the deadline."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                got = fn()
                if got:
                    return got
            except (CallFailed, httpx.HTTPError) as exc:
                last = exc
            if time.monotonic() > deadline:
                raise CallFailed(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""))
            time.sleep(interval)


# -- the driver ----------------------------------------------------------------------------------

@dataclass
class DocResult:
    index: int
    requisition_id: str | None = None
    po_numbers: dict[str, str] = field(default_factory=dict)   # supplier -> PO number
    invoice_ids: dict[str, str] = field(default_factory=dict)  # supplier -> invoice id
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


class Driver:
    def __init__(self, http: Http, plan: Plan, run: str, *, workers: int = 12,
                 stage_timeout_s: float = 240.0) -> None:
        self.http = http
        self.plan = plan
        self.run = run
        self.stage_timeout_s = stage_timeout_s
        self.results: dict[int, DocResult] = {d.index: DocResult(d.index) for d in plan.docs}
        self.t0 = time.monotonic()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="doc")
        self._futures: list[Future] = []
        self._suppliers = {s.id: s for s in SUPPLIERS}

    def seed_suppliers(self) -> None:
        for s in SUPPLIERS:
            # 409: already there (seeded before, or by a first attempt that landed).
            self.http.call("requisitions", "POST", "/suppliers", ADMIN, json=s.as_request(),
                           ok=(201, 409))

    def launch(self, docs: Iterable[DocPlan], spacing_s: float) -> None:
        """Start `docs` one every `spacing_s` from now (an arrival rate), each in its thread."""
        now = time.monotonic()
        for n, d in enumerate(docs):
            self._futures.append(self._pool.submit(self._run_doc, d, now + n * spacing_s))

    def wait(self, timeout: float) -> None:
        """Until every launched document has finished (each fails on its own deadlines)."""
        deadline = time.monotonic() + timeout
        for f in self._futures:
            f.result(timeout=max(deadline - time.monotonic(), 0.1))
        self._pool.shutdown()

    # -- progress, for the fault injector and the report
    def in_flight(self) -> int:
        return sum(1 for r in self.results.values()
                   if r.started_at is not None and r.finished_at is None)

    def created(self, docs: Iterable[DocPlan]) -> int:
        return sum(1 for d in docs if self.results[d.index].requisition_id)

    def errors(self) -> dict[int, str]:
        return {i: r.error for i, r in self.results.items() if r.error}

    def _run_doc(self, doc: DocPlan, start_at: float) -> DocResult:
        result = self.results[doc.index]
        delay = start_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the load's schedule (an arrival rate), not a synchronisation
        result.started_at = time.monotonic()
        try:
            self._flow(doc, result)
        except Exception as exc:  # noqa: BLE001 - reported per document; the checks fail on it
            result.error = f"{type(exc).__name__}: {exc}"
        result.finished_at = time.monotonic()
        return result

    def _flow(self, doc: DocPlan, result: DocResult) -> None:
        requester = (doc.requester, ("requester",))
        req = self._create_requisition(doc, requester)
        rid = result.requisition_id = req["id"]
        self.http.call("requisitions", "POST", f"/requisitions/{rid}/submit", requester,
                       ok=(202,), done_statuses=(409,),
                       done_if=lambda: self._status(rid, requester) != "draft")
        if doc.needs_approval:
            task = self.http.poll(f"{OWNER}'s task for {rid}",
                                  lambda: self._task_for(rid), self.stage_timeout_s)
            self.http.call("approvals", "POST", f"/tasks/{task['task_id']}/decision",
                           (OWNER, ("approver",)), json={"decision": "approve"},
                           ok=(200,), done_statuses=(409,))
        req = self.http.poll(f"POs of {rid}", lambda: self._ordered(rid, requester, doc),
                             self.stage_timeout_s)
        pos = {}
        for number in req["purchase_orders"]:
            po = self.http.get("requisitions", f"/purchase-orders/{number}", RECEIVER)
            pos[po["supplier_id"]] = po
            result.po_numbers[po["supplier_id"]] = number
        assert set(pos) == set(doc.suppliers), (sorted(pos), doc.suppliers)
        for s in doc.suppliers:
            po = pos[s]
            if s in doc.invoice_first:
                result.invoice_ids[s] = self._send_invoice(doc, s, po)
                self._wait_invoice(result.invoice_ids[s], {"awaiting_receipt"})
            self._receive(po)
            if s not in doc.invoice_first:
                result.invoice_ids[s] = self._send_invoice(doc, s, po)
            final = {"exception"} if s in doc.bad_price else {"cleared_for_payment"}
            self._wait_invoice(result.invoice_ids[s], final)

    def _create_requisition(self, doc: DocPlan, requester: tuple[str, tuple[str, ...]]) -> dict:
        body = {"title": doc.title, "cost_center": COST_CENTER, "currency": "EUR",
                "justification": "resilience load",
                "lines": [{"description": ln.description, "category": "OFFICE",
                           "quantity": str(ln.quantity), "unit_price": str(ln.unit_price),
                           "supplier_id": ln.supplier_id} for ln in doc.lines]}
        return self.http.call("requisitions", "POST", "/requisitions", requester, json=body,
                              ok=(201,), done_if=lambda: self._find_by_title(doc, requester))

    def _find_by_title(self, doc: DocPlan, requester: tuple[str, tuple[str, ...]]) -> dict | None:
        mine = self.http.pages("requisitions", "/requisitions", requester, {"mine": "true"})
        return next((r for r in mine if r["title"] == doc.title), None)

    def _status(self, rid: str, requester: tuple[str, tuple[str, ...]]) -> str:
        return self.http.get("requisitions", f"/requisitions/{rid}", requester)["status"]

    def _task_for(self, rid: str) -> dict | None:
        inbox = self.http.pages("approvals", "/inbox", (OWNER, ("approver",)))
        return next((t for t in inbox if t["requisition_id"] == rid), None)

    def _ordered(self, rid: str, requester: tuple[str, tuple[str, ...]], doc: DocPlan) -> dict | None:
        req = self.http.get("requisitions", f"/requisitions/{rid}", requester)
        if req["status"] in ("rejected", "changes_requested", "cancelled"):
            raise AssertionError(f"requisition {rid} ended {req['status']}")
        if req["status"] == "ordered" and len(req["purchase_orders"]) == len(doc.suppliers):
            return req
        return None

    def _receive(self, po: dict) -> None:
        lines = [{"line_no": ln["line_no"], "quantity": ln["ordered_quantity"]}
                 for ln in po["lines"]]
        self.http.call("requisitions", "POST", f"/purchase-orders/{po['number']}/receipts",
                       RECEIVER, json={"lines": lines}, ok=(201,),
                       done_if=lambda: self._fully_received(po["number"]))

    def _fully_received(self, number: str) -> bool:
        po = self.http.get("requisitions", f"/purchase-orders/{number}", RECEIVER)
        return all(Decimal(ln["received_quantity"]) >= Decimal(ln["ordered_quantity"])
                   for ln in po["lines"])

    def _send_invoice(self, doc: DocPlan, supplier_id: str, po: dict) -> str:
        body = invoice_body(doc, self._suppliers[supplier_id], po, self.run)
        out = self.http.call("invoices", "POST", "/invoices", INTAKE, json=body, ok=(201,),
                             done_statuses=(409,))
        return out.get("id") or out["existing_id"]

    def _wait_invoice(self, invoice_id: str, statuses: set[str]) -> dict:
        return self.http.poll(
            f"invoice {invoice_id} to reach {statuses}",
            lambda: (inv := self.http.get("invoices", f"/invoices/{invoice_id}", CLERK))["status"]
            in statuses and inv, self.stage_timeout_s)
