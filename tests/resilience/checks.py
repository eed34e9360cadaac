"""After the load: what every document became, and the invariants a crash must not break.

Each check is a `Check(name, figure, ok)`; the test prints them all, then asserts every one,
so a failing run still reports what held and what did not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared import topics
from shared.devstack import UpProcess
from tests.resilience import faults
from tests.resilience.load import CLERK, RECEIVER, Driver, Expectation

FINAL_MATCH_TYPES = {"p2p.invoice.matched.v1": "matched",
                     "p2p.invoice.exception_raised.v1": "exception"}


@dataclass
class Check:
    name: str
    figure: str
    ok: bool


def observed(up: UpProcess) -> Expectation:
    """The same counts as `Plan.expectation()`, read from the services' databases."""
    got = Expectation()
    got.requisitions.update(dict(faults.query(
        up, "requisitions", "SELECT status, count(*) FROM requisitions GROUP BY status")))
    for status, decided_by, n in faults.query(
            up, "approvals", "SELECT status, decided_by, count(*) FROM approvals "
                             "GROUP BY status, decided_by"):
        got.approvals[f"{status} by {'+'.join(decided_by or [])}"] += n
    got.purchase_orders.update(dict(faults.query(
        up, "requisitions", "SELECT status, count(*) FROM purchase_orders GROUP BY status")))
    got.invoices.update(dict(faults.query(
        up, "invoices", "SELECT status, count(*) FROM invoices GROUP BY status")))
    got.match_outcomes.update({str(k): v for k, v in faults.query(
        up, "matching", "SELECT final_outcome, count(*) FROM invoices GROUP BY final_outcome")})
    got.open_exceptions = faults.query(
        up, "matching", "SELECT count(*) FROM exceptions WHERE status = 'open'")[0][0]
    return got


def _distinct(envs: list, key, value=lambda e: e.id) -> dict[Any, set]:
    out: dict[Any, set] = defaultdict(set)
    for e in envs:
        out[key(e)].add(value(e))
    return out


def _by_type(envs: list, ce_type: str) -> list:
    return [e for e in envs if e.type == ce_type]


def documents(driver: Driver) -> list[Check]:
    """Every document, through the APIs, is in the state its plan implies."""
    http = driver.http
    wrong: dict[int, list[str]] = defaultdict(list)
    for doc in driver.plan.docs:
        res = driver.results[doc.index]
        if res.requisition_id is None:
            wrong[doc.index].append("never created")
            continue
        req = http.get("requisitions", f"/requisitions/{res.requisition_id}",
                       (doc.requester, ("requester",)))
        if req["status"] != "received":
            wrong[doc.index].append(f"requisition {req['status']}")
        if len(req["purchase_orders"]) != len(doc.suppliers):
            wrong[doc.index].append(f"{len(req['purchase_orders'])} POs for "
                                    f"{len(doc.suppliers)} suppliers")
        for number in req["purchase_orders"]:
            po = http.get("requisitions", f"/purchase-orders/{number}", RECEIVER)
            if any(Decimal(ln["received_quantity"]) != Decimal(ln["ordered_quantity"])
                   for ln in po["lines"]):
                wrong[doc.index].append(f"{number} received ≠ ordered")
        for s in doc.suppliers:
            inv_id = res.invoice_ids.get(s)
            if inv_id is None:
                wrong[doc.index].append(f"no invoice for {s}")
                continue
            want = "exception" if s in doc.bad_price else "matched"
            want_status = "exception" if want == "exception" else "cleared_for_payment"
            inv = http.get("invoices", f"/invoices/{inv_id}", CLERK)
            match = http.get("matching", f"/matches/{inv_id}", CLERK)
            if inv["status"] != want_status or match["outcome"] != want:
                wrong[doc.index].append(f"{s}: invoice {inv['status']}, match {match['outcome']}")
    n = len(driver.plan.docs)
    listed = "; ".join(f"#{i}: {', '.join(w)}" for i, w in list(wrong.items())[:8])
    return [Check("every document in its planned final state (API)",
                  f"{n - len(wrong)}/{n} documents" + (f"; wrong: {listed}" if wrong else ""),
                  not wrong)]


def invariants(up: UpProcess, driver: Driver, expected: Expectation) -> list[Check]:
    checks: list[Check] = []
    add = lambda name, figure, ok: checks.append(Check(name, str(figure), bool(ok)))

    errors = driver.errors()
    add("driver: every document finished without error", errors or "none", not errors)

    # -- outcome counts vs the plan (= what a run without faults gives)
    got = observed(up)
    for part in ("requisitions", "approvals", "purchase_orders", "invoices", "match_outcomes"):
        want, have = dict(getattr(expected, part)), dict(getattr(got, part))
        add(f"{part} per status = fault-free plan", f"{have} (plan {want})", have == want)
    add("open exceptions = fault-free plan",
        f"{got.open_exceptions} (plan {expected.open_exceptions})",
        got.open_exceptions == expected.open_exceptions)

    # -- purchase orders: exactly one per supplier per approved requisition
    doubled = faults.query(up, "requisitions",
                           "SELECT requisition_id, supplier_id, count(*) FROM purchase_orders "
                           "GROUP BY 1, 2 HAVING count(*) > 1")
    add("DB: no requisition has two POs for one supplier", f"{len(doubled)} doubled", not doubled)
    missing = faults.query(up, "requisitions", """
        SELECT r.id, count(DISTINCT l.supplier_id), count(DISTINCT p.id)
        FROM requisitions r JOIN requisition_lines l ON l.requisition_id = r.id
        LEFT JOIN purchase_orders p ON p.requisition_id = r.id
        WHERE r.status IN ('approved', 'ordered', 'partially_received', 'received')
        GROUP BY r.id HAVING count(DISTINCT l.supplier_id) <> count(DISTINCT p.id)""")
    n_approved = faults.query(up, "requisitions", "SELECT count(*) FROM requisitions WHERE status "
                              "IN ('approved', 'ordered', 'partially_received', 'received')")[0][0]
    add("DB: every approved requisition has one PO per supplier",
        f"{n_approved - len(missing)}/{n_approved} requisitions", not missing)
    receipts = faults.query(up, "requisitions",
                            "SELECT po_id, count(*) FROM receipts GROUP BY po_id "
                            "HAVING count(*) <> 1")
    add("DB: exactly one goods receipt per PO", f"{len(receipts)} POs with ≠ 1", not receipts)

    # -- match decisions: exactly one final decision per invoice
    inv_ids = {r[0] for r in faults.query(up, "invoices", "SELECT id FROM invoices")}
    finals = dict(faults.query(up, "matching",
                               "SELECT invoice_id, count(*) FROM match_decisions "
                               "WHERE outcome IN ('matched', 'exception') GROUP BY invoice_id"))
    bad_finals = {i: finals.get(i, 0) for i in inv_ids if finals.get(i, 0) != 1}
    add("DB: exactly one final match decision per invoice",
        f"{len(inv_ids) - len(bad_finals)}/{len(inv_ids)} invoices"
        + (f"; off: {dict(list(bad_finals.items())[:5])}" if bad_finals else ""), not bad_finals)
    open_twice = faults.query(up, "matching", "SELECT invoice_id FROM exceptions "
                                              "GROUP BY invoice_id HAVING count(*) > 1")
    add("DB: at most one exception per invoice", f"{len(open_twice)} with more", not open_twice)

    # -- the event log: no effect published twice under different event ids
    matching_events = faults.read_topic(up, topics.MATCHING)
    final_events = [e for e in matching_events if e.type in FINAL_MATCH_TYPES]
    outcomes = _distinct(final_events, lambda e: e.subject, lambda e: FINAL_MATCH_TYPES[e.type])
    two_outcomes = {k: v for k, v in outcomes.items() if len(v) > 1}
    add("p2p.matching: no invoice has final events of two outcomes",
        f"{len(two_outcomes)} of {len(outcomes)} invoices", not two_outcomes)
    final_ids = _distinct(final_events, lambda e: e.subject)
    add("p2p.matching: one final event (ce_id) per invoice",
        f"{sum(len(v) == 1 for v in final_ids.values())}/{len(inv_ids)} invoices",
        set(final_ids) == inv_ids and all(len(v) == 1 for v in final_ids.values()))
    cleared = _distinct(_by_type(matching_events, "p2p.invoice.cleared_for_payment.v1"),
                        lambda e: e.subject)
    add("p2p.matching: at most one cleared_for_payment per invoice",
        f"{len(cleared)} cleared, {sum(len(v) > 1 for v in cleared.values())} twice",
        all(len(v) == 1 for v in cleared.values()))
    redelivered = len(matching_events) - len({e.id for e in matching_events})
    add("p2p.matching: records repeating an earlier ce_id (at-least-once, harmless)",
        redelivered, True)

    po_events = faults.read_topic(up, topics.PURCHASE_ORDERS)
    issued = _by_type(po_events, "p2p.purchase_order.issued.v1")
    per_supplier = _distinct(issued, lambda e: (e.data["requisition_id"], e.data["supplier_id"]),
                             lambda e: e.data["po_id"])
    issued_ids = _distinct(issued, lambda e: e.data["po_id"])
    add("p2p.purchase-orders: one PO issued per (requisition, supplier), one event each",
        f"{len(per_supplier)} pairs, {len(issued_ids)} POs",
        all(len(v) == 1 for v in per_supplier.values())
        and all(len(v) == 1 for v in issued_ids.values())
        and len(per_supplier) == sum(expected.purchase_orders.values()))
    rcpt = _distinct(_by_type(po_events, "p2p.goods_receipt.recorded.v1"),
                     lambda e: e.data["po_id"], lambda e: e.data["receipt_id"])
    add("p2p.purchase-orders: one goods receipt event per PO", f"{len(rcpt)} POs",
        all(len(v) == 1 for v in rcpt.values()) and len(rcpt) == len(issued_ids))

    decided = _distinct(_by_type(faults.read_topic(up, topics.APPROVALS),
                                 "p2p.approval.decided.v1"), lambda e: e.data["requisition_id"])
    add("p2p.approvals: one decision event per requisition",
        f"{sum(len(v) == 1 for v in decided.values())}/{len(driver.plan.docs)}",
        len(decided) == len(driver.plan.docs) and all(len(v) == 1 for v in decided.values()))
    submitted = _distinct(_by_type(faults.read_topic(up, topics.REQUISITIONS),
                                   "p2p.requisition.submitted.v1"),
                          lambda e: e.data["requisition_id"])
    add("p2p.requisitions: one submission event per requisition",
        f"{sum(len(v) == 1 for v in submitted.values())}/{len(driver.plan.docs)}",
        len(submitted) == len(driver.plan.docs) and all(len(v) == 1 for v in submitted.values()))
    received = _distinct(_by_type(faults.read_topic(up, topics.INVOICES),
                                  "p2p.invoice.received.v1"), lambda e: e.data["invoice_id"])
    add("p2p.invoices: one invoice.received per invoice",
        f"{sum(len(v) == 1 for v in received.values())}/{len(inv_ids)}",
        set(received) == inv_ids and all(len(v) == 1 for v in received.values()))

    # -- nothing stuck, nothing parked
    pending = faults.outbox_pending(up)
    add("no outbox row left unpublished", pending, not any(pending.values()))
    lag = faults.consumer_lag(up)
    add("every consumer group committed to the end", lag, not any(lag.values()))
    dlq = faults.dlq_counts(up)
    add("nothing in any DLQ", dlq, not any(dlq.values()))
    return checks


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<{width}}  {c.figure}" for c in checks)

