"""The matching engine: (invoice, PO, receipts, prior invoicing, policy) → decision.

A pure function and the hottest code of the system: no I/O, no ORM objects, no clock (the
caller passes `now` in the inputs). Every check it applies is recorded, passed or not:

header  PO_NOT_FOUND, SUPPLIER_MISMATCH (any identifier: id, VAT id, PEPPOL id, others),
        CURRENCY_MISMATCH, PO_CLOSED (closed as cancelled; a PO closed because it was fully
        received still takes its invoices), DUPLICATE_SUSPECTED (intake's flag)
line    LINE_NOT_ON_PO (pairing by po_line_no, else by description similarity, with score),
        PRICE_VARIANCE, QTY_OVER_ORDERED, QTY_OVER_RECEIVED (three-way lines only)
header  TOTAL_VARIANCE (invoice net vs Σ net of the lines paired with the PO),
        MISSING_RECEIPT (only when lines wait for receipts: passes within `receipt_wait`)

Quantities are cumulative per PO line: what other invoices already invoiced (credit notes
netted, `inputs.prior`) plus this invoice's lines on that PO line up to the current one.
Credit notes are checked on their header and line pairing only; their effect is to reduce
the cumulative invoiced quantity of the lines they credit.
"""

from __future__ import annotations

from decimal import Decimal

from rapidfuzz import fuzz, process, utils

from services.matching.domain import (
    ZERO,
    Check,
    Decision,
    MatchInputs,
    Outcome,
    PoLine,
    Rule,
    accepted_variance,
    normalise_line_no,
    pct_of,
)
from services.matching.policy import TolerancePolicy

PAIRING_MIN_SCORE = 70.0  # rapidfuzz WRatio, 0..100, on lower-cased, punctuation-free text
_BY_PO_LINE_NO = {"pairing": "po_line_no"}

_PO_NOT_FOUND = Rule.PO_NOT_FOUND
_PRICE = Rule.PRICE_VARIANCE
_ORDERED = Rule.QTY_OVER_ORDERED
_RECEIVED = Rule.QTY_OVER_RECEIVED
_LINE = Rule.LINE_NOT_ON_PO


def pair_by_description(description: str, lines: tuple[PoLine, ...]) -> tuple[PoLine | None, float]:
    """The PO line whose description is most similar, if similar enough, and the score."""
    if not lines:
        return None, 0.0
    choices = {i: pl.description for i, pl in enumerate(lines)}
    best = process.extractOne(description, choices, scorer=fuzz.WRatio,
                              processor=utils.default_process)
    if best is None:
        return None, 0.0
    _, score, index = best
    score = round(float(score), 1)
    return (lines[index] if score >= PAIRING_MIN_SCORE else None), score


def match(inputs: MatchInputs, policy: TolerancePolicy, policy_version: int) -> Decision:
    inv = inputs.invoice
    po = inputs.po
    now = inputs.now
    checks: list[Check] = []
    add = checks.append

    if po is None:
        ref = inv.order_reference
        if ref:
            wait_until = inputs.first_seen_at + policy.po_wait
            if now < wait_until:
                add(Check(_PO_NOT_FOUND, False, expected=ref, actual=None,
                          tolerance=policy.document["po_wait"],
                          detail={"waiting_until": wait_until}))
                return Decision(Outcome.AWAITING_PO, tuple(checks), policy_version,
                                wait_until=wait_until)
            detail = {"reason": "no purchase order with this number arrived within po_wait"}
        else:
            detail = {"reason": "the invoice carries no order reference (non-PO invoice)"}
        add(Check(_PO_NOT_FOUND, False, expected=ref, actual=None, detail=detail))
        return Decision(Outcome.EXCEPTION, tuple(checks), policy_version)

    add(Check(_PO_NOT_FOUND, True, expected=po.po_number, actual=inv.order_reference or po.po_number))
    common = inv.supplier_keys & po.supplier_keys
    add(Check(Rule.SUPPLIER_MISMATCH, bool(common), expected=po.supplier_id,
              actual=inv.supplier_id or inv.vat_id or inv.peppol_id,
              detail={"matched_on": min(common)} if common else None))
    add(Check(Rule.CURRENCY_MISMATCH, inv.currency == po.currency, expected=po.currency,
              actual=inv.currency))
    cancelled = po.status == "closed" and po.closed_reason != "received"
    add(Check(Rule.PO_CLOSED, not cancelled, expected="issued",
              actual=po.status if po.status != "closed" else f"closed:{po.closed_reason}"))
    duplicate = "suspected_duplicate" in inv.flags
    add(Check(Rule.DUPLICATE_SUSPECTED, not duplicate, expected=False, actual=duplicate))

    is_credit = inv.is_credit_note
    by_no = po.by_no
    prior = inputs.prior
    received = inputs.received
    supplier_id = po.supplier_id
    cumulative: dict[int, Decimal] = {}
    pairings: list[tuple[str, int, int]] = []
    short_lines: list[str] = []
    paired_net = ZERO

    for index, il in enumerate(inv.lines):
        ln = il.line_no
        if il.po_line_no is not None and il.po_line_no.strip():
            pl = by_no.get(normalise_line_no(il.po_line_no))
            if pl is None:
                add(Check(_LINE, False, line_no=ln, actual=il.po_line_no, detail=_BY_PO_LINE_NO))
                continue
            add(Check(_LINE, True, line_no=ln, po_line_no=pl.line_no, expected=pl.line_no,
                      actual=il.po_line_no, detail=_BY_PO_LINE_NO))
        else:
            pl, score = pair_by_description(il.description, po.lines)
            pairing = {"pairing": "description", "score": score, "min_score": PAIRING_MIN_SCORE}
            if pl is None:
                add(Check(_LINE, False, line_no=ln, actual=il.description, detail=pairing))
                continue
            add(Check(_LINE, True, line_no=ln, po_line_no=pl.line_no, expected=pl.description,
                      actual=il.description, detail=pairing))
        po_ln = pl.line_no
        pairings.append((ln, po_ln, index))
        paired_net += il.net_amount
        if is_credit:
            continue

        t = policy.for_line(supplier_id, pl.category)
        expected = pl.unit_price
        variance = il.unit_price - expected
        by_pct = pct_of(expected, t.price_pct)
        tolerance = (max(by_pct, t.price_abs) if t.price_rule == "either"
                     else min(by_pct, t.price_abs))
        add(Check(_PRICE, variance <= tolerance, line_no=ln, po_line_no=po_ln, expected=expected,
                  actual=il.unit_price, tolerance=tolerance, variance=variance,
                  detail={"quantity": il.quantity, "price_rule": t.price_rule}))

        so_far = cumulative.get(po_ln)
        if so_far is None:
            before = prior.get(po_ln)
            so_far = before.quantity if before is not None else ZERO
        so_far += il.quantity
        cumulative[po_ln] = so_far
        ordered = pl.quantity
        tolerance = pct_of(ordered, t.qty_over_ordered_pct)
        variance = so_far - ordered
        add(Check(_ORDERED, variance <= tolerance, line_no=ln, po_line_no=po_ln,
                  expected=ordered, actual=so_far, tolerance=tolerance, variance=variance))
        if pl.receipt_required:
            got = received.get(po_ln, ZERO)
            tolerance = pct_of(got, t.qty_over_received_pct)
            variance = so_far - got
            ok = variance <= tolerance
            add(Check(_RECEIVED, ok, line_no=ln, po_line_no=po_ln, expected=got, actual=so_far,
                      tolerance=tolerance, variance=variance))
            if not ok:
                short_lines.append(ln)

    if not is_credit:
        header = policy.for_header(supplier_id)
        variance = inv.net - paired_net
        add(Check(Rule.TOTAL_VARIANCE, variance <= header.total_abs, expected=paired_net,
                  actual=inv.net, tolerance=header.total_abs, variance=variance))

    failed = [c for c in checks if not c.passed]
    if not failed:
        return Decision(Outcome.MATCHED, tuple(checks), policy_version,
                        accepted_variance=ZERO if is_credit else accepted_variance(checks),
                        pairings=tuple(pairings))
    if short_lines and all(c.rule == _RECEIVED for c in failed):
        since = inputs.awaiting_since or now
        deadline = since + policy.receipt_wait
        waiting = now < deadline
        add(Check(Rule.MISSING_RECEIPT, waiting, tolerance=policy.document["receipt_wait"],
                  detail={"lines": ",".join(short_lines), "awaiting_since": since,
                          "wait_until": deadline}))
        if waiting:
            return Decision(Outcome.AWAITING_RECEIPT, tuple(checks), policy_version,
                            wait_until=deadline, awaiting_lines=tuple(short_lines),
                            pairings=tuple(pairings))
    return Decision(Outcome.EXCEPTION, tuple(checks), policy_version, pairings=tuple(pairings))


__all__ = ["PAIRING_MIN_SCORE", "match", "pair_by_description"]
