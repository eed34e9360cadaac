"""Matching's units of work: event handlers, the deadline sweeper, exception actions, what-if.

Concurrency: every unit of work that matches an invoice first takes a transaction-scoped
advisory lock on its document flow (the PO number it quotes, or the invoice id when it quotes
none), then locks the invoice row. The one consumer handles PO and invoice topics in arrival
order; the sweeper claims due deadlines with `FOR UPDATE SKIP LOCKED` and only *tries* the
flow lock (skipping busy flows until its next pass), so the two can never deadlock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from services.matching import metrics, store
from services.matching.domain import (
    Decision,
    ExceptionCase,
    Invoice,
    MatchInputs,
    Outcome,
    accepted_variance,
    inputs_to_json,
    invoice_from_json,
    invoice_to_json,
    normalise_po_number,
    po_from_json,
    po_to_json,
    supplier_keys,
)
from services.matching.engine import match
from services.matching.policy import TolerancePolicy, parse_policy
from services.matching.simulate import simulate_rows
from shared.contracts.invoices import InvoiceReceived
from shared.contracts.matching import (
    InvoiceAwaitingReceipt,
    InvoiceClearedForPayment,
    InvoiceExceptionRaised,
    InvoiceExceptionResolved,
    InvoiceMatched,
    InvoiceRejected,
)
from shared.contracts.requisitions import (
    GoodsReceiptRecorded,
    PurchaseOrderClosed,
    PurchaseOrderIssued,
)
from shared.db import after_commit
from shared.envelope import Envelope
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)

WAITING_STATES = ("awaiting_po", "awaiting_receipt")
POLICY_TTL = 1.0  # seconds
SYSTEM = "system"


def _now() -> datetime:
    return datetime.now(UTC)


def sweep_interval_from_env() -> float:
    return float(os.environ.get("P2P_MATCHING_SWEEP_SECONDS", "5"))


@dataclass
class Matching:
    """The service's behaviour, bound to its runtime at start."""

    sweep_interval: float = 5.0
    runtime: ServiceRuntime | None = None
    _policies: dict[int, TolerancePolicy] = field(default_factory=dict)
    # (current version, monotonic time read): other replicas' PUTs show within POLICY_TTL
    _current: tuple[int, float] | None = None

    # -- start -------------------------------------------------------------------------
    def start(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        with runtime.db.session() as session, session.begin():
            if store.current_policy(session) is None:
                self.load_initial_policy(session, runtime.settings.tolerances)
        runtime.start_thread("deadline-sweeper", self.run_sweeper)

    @property
    def outbox(self):
        assert self.runtime is not None
        return self.runtime.outbox

    # -- tolerance policy --------------------------------------------------------------
    def load_initial_policy(self, session: Session, path: Path) -> int:
        document = yaml.safe_load(Path(path).read_text())
        policy = parse_policy(document)  # an invalid shipped file stops the start, loudly
        store.lock_document_flow(session, "tolerance-policy")
        if store.current_policy(session) is not None:
            return store.current_policy(session).version  # type: ignore[union-attr]
        return store.add_policy(session, policy.document, f"file:{Path(path).name}")

    def policy(self, session: Session) -> tuple[int, TolerancePolicy]:
        """The current policy; its version is re-read at most every POLICY_TTL seconds (a PUT
        in this process takes effect at once, one in another replica within the TTL)."""
        current = self._current
        if current is not None and time.monotonic() - current[1] < POLICY_TTL:
            version = current[0]
            if version in self._policies:
                return version, self._policies[version]
        row = store.current_policy(session)
        if row is None:
            raise LookupError("no tolerance policy is stored")
        if row.version not in self._policies:
            self._policies[row.version] = parse_policy(row.document)
        self._current = (row.version, time.monotonic())
        return row.version, self._policies[row.version]

    def put_policy(self, session: Session, document: Any, user_id: str) -> tuple[int, dict[str, Any]]:
        policy = parse_policy(document)  # PolicyError → 422 in the API
        version = store.add_policy(session, policy.document, user_id)
        self._policies[version] = policy
        after_commit(session, lambda: setattr(self, "_current", (version, time.monotonic())))
        return version, policy.document

    # -- events from requisitions ------------------------------------------------------
    def on_po_issued(self, session: Session, ev: PurchaseOrderIssued, _: Envelope) -> None:
        po_number = normalise_po_number(ev.po_number)
        store.lock_document_flow(session, po_number)
        ids = ev.supplier_identifiers
        document = po_to_json(po_from_json({
            "po_number": po_number, "supplier_id": ev.supplier_id,
            "vat_id": ids.vat_id, "peppol_id": ids.peppol_id,
            "identifiers": [*ids.identifiers, *([ids.id] if ids.id else [])],
            "currency": ev.currency, "status": "issued", "requester": ev.requester,
            "lines": [line.model_dump(mode="json") for line in ev.lines],
        }))
        created = store.insert_po(
            session, po_number=po_number, po_id=ev.po_id, requisition_id=ev.requisition_id,
            requester=ev.requester, supplier_id=ev.supplier_id, currency=ev.currency,
            status="issued", document=document, issued_at=ev.issued_at)
        if created:
            self._rematch_waiting(session, po_number, ("awaiting_po",), "purchase_order_issued")

    def on_receipt(self, session: Session, ev: GoodsReceiptRecorded, _: Envelope) -> None:
        po_number = normalise_po_number(ev.po_number)
        store.lock_document_flow(session, po_number)
        created = store.insert_receipt(session, ev.receipt_id, po_number,
                                       [line.model_dump(mode="json") for line in ev.lines],
                                       ev.received_at)
        if created:
            self._rematch_waiting(session, po_number, ("awaiting_receipt",), "goods_receipt_recorded")

    def on_po_closed(self, session: Session, ev: PurchaseOrderClosed, _: Envelope) -> None:
        po_number = normalise_po_number(ev.po_number)
        store.lock_document_flow(session, po_number)
        store.close_po(session, po_number, ev.reason)
        if ev.reason != "received":
            self._rematch_waiting(session, po_number, WAITING_STATES, "purchase_order_closed")

    def _rematch_waiting(self, session: Session, po_number: str, states: tuple[str, ...],
                         trigger: str) -> None:
        now = _now()
        for invoice_id in store.invoices_in_state(session, po_number, states):
            row = store.get_invoice(session, invoice_id, for_update=True)
            if row is not None and row.state in states:
                self.run_match(session, row, now, trigger)

    # -- events from invoices ----------------------------------------------------------
    def on_invoice(self, session: Session, ev: InvoiceReceived, _: Envelope) -> None:
        ref = normalise_po_number(ev.order_reference) if ev.order_reference else None
        preceding_id = ev.preceding_invoice_id
        if ev.type == "credit_note" and (ref is None or preceding_id is None):
            preceding = (store.get_invoice(session, preceding_id) if preceding_id else None) or (
                store.find_invoice_by_number(session, ev.supplier.id, ev.preceding_invoice)
                if ev.preceding_invoice else None)
            if preceding is not None:
                preceding_id = preceding.invoice_id
                ref = ref or preceding.po_number or preceding.order_reference
        store.lock_document_flow(session, ref or ev.invoice_id)
        invoice = Invoice(
            invoice_id=ev.invoice_id, invoice_number=ev.invoice_number, type=ev.type,
            currency=ev.currency, supplier_id=ev.supplier.id,
            supplier_keys=supplier_keys(ev.supplier.id, ev.supplier.vat_id, ev.supplier.peppol_id,
                                        identifiers=ev.supplier.identifiers),
            order_reference=ev.order_reference,
            lines=(), net=ev.totals.net, payable=ev.totals.payable, flags=tuple(ev.flags),
            preceding_invoice_id=preceding_id, vat_id=ev.supplier.vat_id,
            peppol_id=ev.supplier.peppol_id, identifiers=tuple(ev.supplier.identifiers))
        document = invoice_to_json(invoice)
        document["lines"] = [
            {"line_no": ln.line_no, "description": ln.description, "quantity": str(ln.quantity),
             "unit_price": str(ln.unit_price), "net_amount": str(ln.net_amount),
             "po_line_no": ln.po_line_no}
            for ln in ev.lines
        ]
        now = _now()
        created = store.insert_invoice(
            session, invoice_id=ev.invoice_id, invoice_number=ev.invoice_number, type=ev.type,
            supplier_id=ev.supplier.id, order_reference=ref, po_number=None,
            currency=ev.currency, payable=ev.totals.payable, preceding_invoice_id=preceding_id,
            document=document, state="received", counts=False, received_at=ev.received_at,
            first_seen_at=now)
        if not created:
            return  # the same invoice again (redelivered with a new event id): decided already
        row = store.get_invoice(session, ev.invoice_id, for_update=True)
        assert row is not None
        self.run_match(session, row, now, "invoice_received")

    # -- the match -----------------------------------------------------------------------
    def gather_inputs(self, session: Session, row: store.InvoiceRow, now: datetime) -> MatchInputs:
        po_row = store.get_po(session, row.order_reference) if row.order_reference else None
        po = po_from_json(po_row.document) if po_row is not None else None
        received = store.received_by_line(session, po.po_number) if po is not None else {}
        prior = store.prior_invoiced(session, po.po_number, row) if po is not None else {}
        return MatchInputs(invoice=invoice_from_json(row.document), po=po, received=received,
                           prior=prior, first_seen_at=row.first_seen_at, now=now,
                           awaiting_since=row.awaiting_since)

    def run_match(self, session: Session, row: store.InvoiceRow, now: datetime, trigger: str,
                  actor: str | None = None) -> Decision:
        """Match one (locked) invoice on current data and apply the outcome."""
        # The queries of a match read other invoices, never this row's pending changes: without
        # autoflush the row is written once, here, instead of at each query (three UPDATEs).
        with session.no_autoflush:
            decision = self._match_and_apply(session, row, now, trigger, actor)
        session.flush()
        if row.type == "credit_note" and decision.outcome == Outcome.MATCHED:
            self._after_credit_note(session, row, now)
        return decision

    def _match_and_apply(self, session: Session, row: store.InvoiceRow, now: datetime,
                         trigger: str, actor: str | None) -> Decision:
        version, policy = self.policy(session)
        inputs = self.gather_inputs(session, row, now)
        decision = match(inputs, policy, version)
        po = inputs.po
        row.decisions += 1
        match_id = store.add_decision(
            session, id=str(uuid.uuid4()), invoice_id=row.invoice_id, seq=row.decisions,
            outcome=decision.outcome, po_number=po.po_number if po else None,
            policy_version=version, trigger=trigger, decided_at=now,
            checks=decision.checks_json(), inputs=inputs_to_json(inputs))
        correlation = self._correlation(session, row)
        po_number = po.po_number if po else None
        had_lines = row.po_number is not None
        row.po_number = po_number
        first_final = row.final_outcome is None and decision.is_final
        if first_final:
            row.final_outcome = decision.outcome
            if row.type == "invoice":
                after_commit(session, metrics.MATCH_OUTCOMES.labels(decision.outcome).inc)
        self._record_invoiced(session, row, inputs, decision, had_lines)
        # An invoice has an unresolved exception exactly while its state is `exception`.
        existing = (store.open_exception_for(session, row.invoice_id, for_update=True)
                    if row.state == "exception" else None)

        if decision.outcome == Outcome.AWAITING_PO:
            row.state, row.deadline, row.counts = "awaiting_po", decision.wait_until, False
        elif decision.outcome == Outcome.AWAITING_RECEIPT:
            if existing is not None:  # resolved first: consumers see the rematch, then the wait
                self._close_case(session, existing, row, "rematch", "rematched", None,
                                 actor or SYSTEM, now, correlation)
            if row.state != "awaiting_receipt":
                self.outbox.add(session, InvoiceAwaitingReceipt(
                    invoice_id=row.invoice_id, po_number=po_number, match_id=match_id,
                    policy_version=version, lines=list(decision.awaiting_lines),
                    wait_until=decision.wait_until, decided_at=now), correlation_id=correlation)
            row.state, row.counts = "awaiting_receipt", False
            row.awaiting_since = row.awaiting_since or now
            row.deadline = decision.wait_until
        elif decision.outcome == Outcome.MATCHED:
            touchless = existing is None and actor is None and row.state != "exception"
            if existing is not None:
                self._close_case(session, existing, row, "rematch", "rematched", None,
                                 actor or SYSTEM, now, correlation)
            self.outbox.add(session, InvoiceMatched(
                invoice_id=row.invoice_id, po_number=po_number, match_id=match_id,
                policy_version=version, decided_at=now), correlation_id=correlation)
            self._clear(session, row, now, correlation, touchless=touchless,
                        variance=decision.accepted_variance, by=None if touchless else (actor or SYSTEM))
        else:
            row.state, row.deadline, row.counts = "exception", None, po is not None
            if existing is None:
                self._raise_exception(session, row, decision, match_id, po_number, now,
                                      correlation)
            else:  # a re-run that still fails: back in the open queue with today's reasons
                existing.status = "open"
                existing.reasons = decision.reasons
                existing.match_id = match_id
                store.add_audit(session, existing.id, now, actor or SYSTEM, "rematched",
                                {"outcome": decision.outcome, "reasons": decision.reasons,
                                 "trigger": trigger})
        return decision

    def _record_invoiced(self, session: Session, row: store.InvoiceRow, inputs: MatchInputs,
                         decision: Decision, had_lines: bool) -> None:
        """The invoice's quantities per PO line (credit notes negative) for the cumulative totals."""
        if had_lines:
            store.delete_invoiced_lines(session, row.invoice_id)
        if inputs.po is None:
            return
        sign = Decimal(-1) if inputs.invoice.is_credit_note else Decimal(1)
        invoice_lines = inputs.invoice.lines
        lines = [(po_line, sign * invoice_lines[i].quantity, sign * invoice_lines[i].net_amount)
                 for _, po_line, i in decision.pairings]
        store.add_invoiced_lines(session, row.invoice_id, inputs.po.po_number, lines)

    def _correlation(self, session: Session, row: store.InvoiceRow) -> str:
        po_row = store.get_po(session, row.order_reference) if row.order_reference else None
        return po_row.requisition_id if po_row is not None else row.invoice_id

    def _raise_exception(self, session: Session, row: store.InvoiceRow, decision: Decision,
                         match_id: str, po_number: str | None, now: datetime,
                         correlation: str) -> None:
        po_row = store.get_po(session, po_number) if po_number else None
        exc = store.ExceptionRow(
            id=str(uuid.uuid4()), invoice_id=row.invoice_id, invoice_number=row.invoice_number,
            po_number=po_number, supplier_id=(po_row.supplier_id if po_row else row.supplier_id),
            requester=po_row.requester if po_row else None, currency=row.currency,
            reasons=decision.reasons, match_id=match_id, status="open", created_at=now)
        store.add_exception(session, exc)
        store.add_audit(session, exc.id, now, SYSTEM, "raised", {"reasons": decision.reasons})
        self.outbox.add(session, InvoiceExceptionRaised(
            invoice_id=row.invoice_id, po_number=po_number, exception_id=exc.id,
            match_id=match_id, reasons=decision.reasons, raised_at=now), correlation_id=correlation)

    def _clear(self, session: Session, row: store.InvoiceRow, now: datetime, correlation: str, *,
               touchless: bool, variance: Decimal, by: str | None) -> None:
        row.state, row.deadline, row.counts = "cleared", None, True
        amount = -row.payable if row.type == "credit_note" else row.payable
        self.outbox.add(session, InvoiceClearedForPayment(
            invoice_id=row.invoice_id, po_number=row.po_number, currency=row.currency,
            amount=amount, touchless=touchless, accepted_variance=variance, cleared_by=by,
            cleared_at=now), correlation_id=correlation)
        cycle = max((now - row.received_at).total_seconds(), 0.0)
        after_commit(session, lambda: metrics.INVOICE_CYCLE.observe(cycle))

    def _close_case(self, session: Session, exc: store.ExceptionRow, row: store.InvoiceRow,
                    action: str, reason_code: str, comment: str | None, by: str, now: datetime,
                    correlation: str, **extra: Any) -> None:
        exc.status = "resolved"
        exc.resolved_at = now
        exc.resolution = {"action": action, "reason_code": reason_code, "comment": comment,
                          "by": by, **extra}
        store.add_audit(session, exc.id, now, by, f"resolved:{action}",
                        {"reason_code": reason_code, "comment": comment, **extra})
        self.outbox.add(session, InvoiceExceptionResolved(
            invoice_id=row.invoice_id, po_number=exc.po_number, exception_id=exc.id,
            action=action, reason_code=reason_code, resolved_by=by, resolved_at=now),
            correlation_id=correlation)
        age = max((now - exc.created_at).total_seconds(), 0.0)
        after_commit(session, lambda: metrics.EXCEPTION_AGE.observe(age))

    def _after_credit_note(self, session: Session, credit: store.InvoiceRow, now: datetime) -> None:
        """A credit note for an invoice waiting on the supplier re-runs that invoice's match."""
        if not credit.preceding_invoice_id:
            return
        exc = store.open_exception_for(session, credit.preceding_invoice_id, for_update=True)
        if exc is None or exc.status != "waiting_supplier":
            return
        original = store.get_invoice(session, credit.preceding_invoice_id, for_update=True)
        if original is not None:
            store.add_audit(session, exc.id, now, SYSTEM, "credit_note_received",
                            {"credit_note": credit.invoice_id})
            self.run_match(session, original, now, "credit_note_received", actor=SYSTEM)

    # -- deadlines ---------------------------------------------------------------------
    def sweep_once(self) -> int:
        """Process every due deadline once; returns how many invoices were re-matched."""
        assert self.runtime is not None
        done = 0
        skip: set[str] = set()
        while not self.runtime.stop.is_set():
            with self.runtime.db.session() as session, session.begin():
                now = _now()
                row = store.claim_due_invoice(session, now, skip)
                if row is None:
                    break
                if not store.try_lock_document_flow(session, row.order_reference or row.invoice_id):
                    skip.add(row.invoice_id)  # busy: the next pass takes it
                    continue
                if row.state not in WAITING_STATES:
                    row.deadline = None
                    continue
                self.run_match(session, row, now, "deadline")
                done += 1
        return done

    def refresh_gauges(self) -> None:
        assert self.runtime is not None
        with self.runtime.db.session() as session:
            metrics.set_open_exceptions(store.open_exception_counts(session))

    def run_sweeper(self, stop: threading.Event) -> None:
        last_gauges = 0.0
        while not stop.is_set():
            try:
                self.sweep_once()
                if time.monotonic() - last_gauges > 2.0:
                    last_gauges = time.monotonic()
                    self.refresh_gauges()
            except Exception:
                log.exception("deadline sweep failed; retrying")
            stop.wait(self.sweep_interval)

    # -- exception actions (API) ---------------------------------------------------------
    def _lock_case(self, session: Session, exception_id: str
                   ) -> tuple[store.ExceptionRow, store.InvoiceRow] | None:
        found = store.get_exception(session, exception_id)
        if found is None:
            return None
        invoice = store.get_invoice(session, found.invoice_id)
        assert invoice is not None
        store.lock_document_flow(session, invoice.order_reference or invoice.invoice_id)
        exc = store.get_exception(session, exception_id, for_update=True)
        invoice = store.get_invoice(session, found.invoice_id, for_update=True)
        assert exc is not None and invoice is not None
        return exc, invoice

    def assign(self, session: Session, exception_id: str, assignee: str, by: str
               ) -> store.ExceptionRow | None:
        locked = self._lock_case(session, exception_id)
        if locked is None:
            return None
        exc, _ = locked
        ExceptionCase(exc.status, exc.requester).check_can_assign()
        previous = exc.assignee
        exc.assignee = assignee
        store.add_audit(session, exc.id, _now(), by, "assigned",
                        {"assignee": assignee, "previous": previous})
        return exc

    def resolve(self, session: Session, exception_id: str, action: str, reason_code: str,
                comment: str | None, by: str) -> tuple[store.ExceptionRow, str | None] | None:
        """Apply a resolution; returns the exception and, for rematch, the new outcome."""
        locked = self._lock_case(session, exception_id)
        if locked is None:
            return None
        exc, invoice = locked
        ExceptionCase(exc.status, exc.requester).check_can_resolve(by, action)
        now = _now()
        correlation = self._correlation(session, invoice)
        if action == "accept":
            latest = store.latest_decision(session, invoice.invoice_id)
            variance = accepted_variance(latest.checks if latest else [])
            self._close_case(session, exc, invoice, "accept", reason_code, comment, by, now,
                             correlation, accepted_variance=str(variance))
            invoice.counts = invoice.po_number is not None
            self._clear(session, invoice, now, correlation, touchless=False, variance=variance, by=by)
            return exc, None
        if action == "reject":
            self._close_case(session, exc, invoice, "reject", reason_code, comment, by, now,
                             correlation)
            invoice.state, invoice.counts, invoice.deadline = "rejected", False, None
            self.outbox.add(session, InvoiceRejected(
                invoice_id=invoice.invoice_id, po_number=invoice.po_number,
                reason_code=reason_code, comment=comment, rejected_by=by, rejected_at=now),
                correlation_id=correlation)
            return exc, None
        if action == "request_credit_note":
            exc.status = "waiting_supplier"
            store.add_audit(session, exc.id, now, by, "request_credit_note",
                            {"reason_code": reason_code, "comment": comment})
            return exc, None
        store.add_audit(session, exc.id, now, by, "rematch_requested",
                        {"reason_code": reason_code, "comment": comment})
        decision = self.run_match(session, invoice, now, "rematch", actor=by)
        if exc.resolution is not None:
            exc.resolution = {**exc.resolution, "reason_code": reason_code, "comment": comment}
        return exc, decision.outcome

    # -- what-if -------------------------------------------------------------------------
    def simulate(self, session: Session, candidate: TolerancePolicy, since: datetime | None,
                 until: datetime | None) -> dict[str, Any]:
        version, current = self.policy(session)
        return simulate_rows(store.latest_inputs(session, since, until), current, version, candidate)
