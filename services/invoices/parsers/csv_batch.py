"""CSV batches: one row per invoice line, rows grouped into invoices by supplier + number.

Columns (header row required, order free, names case-insensitive, unknown columns ignored):

| column | required | meaning |
| --- | --- | --- |
| supplier_id, supplier_vat_id, supplier_peppol_id, supplier_name | at least one | the supplier |
| invoice_number | yes | BT-1 |
| type | no | `invoice` (default) or `credit_note` |
| issue_date, due_date | issue_date | `YYYY-MM-DD` |
| currency | yes | ISO 4217 |
| order_reference | no | the PO number |
| preceding_invoice | no | the invoice a credit note corrects |
| line_no, description, quantity, unit_price, net_amount | yes | the line |
| uom, po_line_no, tax_category, tax_rate | no | unit (UN/ECE rec. 20, default EA), PO line, VAT |
| total_net, total_tax, total_gross, total_payable | yes | document totals, repeated on every row |
| total_prepaid | no | amount already paid |

Header columns (everything but the line columns) must be equal on every row of one invoice.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from pydantic import ValidationError

from services.invoices.domain import Invoice, Issue
from services.invoices.parsers.common import Malformed
from services.invoices.parsers.native import NativeInvoice, from_native, schema_issues

SUPPLIER_COLUMNS = ("supplier_id", "supplier_vat_id", "supplier_peppol_id", "supplier_name")
HEADER_COLUMNS = (*SUPPLIER_COLUMNS, "invoice_number", "type", "issue_date", "due_date",
                  "currency", "order_reference", "preceding_invoice", "total_net", "total_tax",
                  "total_gross", "total_payable", "total_prepaid")
LINE_COLUMNS = ("line_no", "description", "quantity", "uom", "unit_price", "net_amount",
                "po_line_no", "tax_category", "tax_rate")
REQUIRED_COLUMNS = ("invoice_number", "issue_date", "currency", "line_no", "description",
                    "quantity", "unit_price", "net_amount", "total_net", "total_tax",
                    "total_gross", "total_payable")
MAX_CSV_FIELD = 10_000


class CsvColumnsMissing(ValueError):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("the CSV header lacks required columns")
        self.issues = issues


@dataclass
class BatchItem:
    """One invoice of a batch: the parsed invoice, or the issues that stopped it."""

    index: int
    invoice_number: str
    rows: list[int]  # 1-based data row numbers (the header is row 0)
    original: bytes
    invoice: Invoice | None = None
    issues: list[Issue] = field(default_factory=list)


def _read(data: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Malformed(f"the CSV is not UTF-8: {exc}") from exc
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise Malformed(f"the CSV is malformed: {exc}") from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise Malformed("the CSV is empty (a header row is required)")
    header = [h.strip().lower() for h in rows[0]]
    for n, row in enumerate(rows[1:], start=1):
        if len(row) != len(header):
            raise Malformed(f"row {n} has {len(row)} fields, the header has {len(header)}")
    return header, rows[1:]


def parse_csv_batch(data: bytes) -> list[BatchItem]:
    header, rows = _read(data)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if not any(c in header for c in SUPPLIER_COLUMNS):
        missing.append("supplier_id|supplier_vat_id|supplier_peppol_id|supplier_name")
    if missing:
        raise CsvColumnsMissing([Issue(f"header.{c}", "P2P-CSV-COLUMN",
                                       f"the header has no column {c!r}", f"header: {c}")
                                 for c in missing])
    if not rows:
        raise CsvColumnsMissing([Issue("rows", "BR-16", "the CSV has a header but no rows",
                                       "row 1")])
    records = [dict(zip(header, (c.strip() for c in row), strict=True)) for row in rows]

    groups: dict[tuple[str, ...], list[int]] = {}
    for n, rec in enumerate(records, start=1):
        key = tuple(rec.get(c, "") for c in (*SUPPLIER_COLUMNS, "invoice_number"))
        groups.setdefault(key, []).append(n)

    items = []
    for index, row_numbers in enumerate(groups.values()):
        group = [records[n - 1] for n in row_numbers]
        items.append(_item(index, header, group, row_numbers))
    return items


def _original(header: list[str], group: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(group)
    return out.getvalue().encode()


def _item(index: int, header: list[str], group: list[dict[str, str]],
          row_numbers: list[int]) -> BatchItem:
    first = group[0]
    item = BatchItem(index=index, invoice_number=first.get("invoice_number", ""),
                     rows=row_numbers, original=_original(header, group))
    for col in HEADER_COLUMNS:
        values = {rec.get(col, "") for rec in group}
        if len(values) > 1:
            item.issues.append(Issue(col, "P2P-CSV-CONSISTENCY",
                                     f"rows of one invoice disagree on {col!r}: {sorted(values)}",
                                     f"rows {row_numbers}: {col}"))

    def cell(rec: dict[str, str], col: str) -> str | None:
        value = rec.get(col)
        return value if value else None

    doc = {
        "type": cell(first, "type") or "invoice",
        "invoice_number": cell(first, "invoice_number"),
        "issue_date": cell(first, "issue_date"),
        "due_date": cell(first, "due_date"),
        "currency": cell(first, "currency"),
        "supplier": {"id": cell(first, "supplier_id"), "vat_id": cell(first, "supplier_vat_id"),
                     "peppol_id": cell(first, "supplier_peppol_id"),
                     "name": cell(first, "supplier_name")},
        "order_reference": cell(first, "order_reference"),
        "preceding_invoice": cell(first, "preceding_invoice"),
        "lines": [{col: cell(rec, col) for col in LINE_COLUMNS} for rec in group],
        "totals": {"net": cell(first, "total_net"), "tax": cell(first, "total_tax"),
                   "gross": cell(first, "total_gross"), "payable": cell(first, "total_payable"),
                   "prepaid": cell(first, "total_prepaid")},
    }
    doc = _drop_none(doc)

    def path_of(field_: str) -> str:
        parts = field_.split(".")
        if parts[0] == "lines" and len(parts) >= 2 and parts[1].isdigit():
            row = row_numbers[int(parts[1])] if int(parts[1]) < len(row_numbers) else row_numbers[0]
            return f"row {row}: {parts[2] if len(parts) > 2 else 'line'}"
        column = {"supplier": "supplier_id", "totals": "total_" + parts[-1]}.get(parts[0], parts[-1])
        if parts[0] == "supplier" and len(parts) > 1:
            column = "supplier_" + parts[1] if parts[1] != "id" else "supplier_id"
        return f"row {row_numbers[0]}: {column}"

    try:
        model = NativeInvoice.model_validate(doc)
    except ValidationError as exc:
        item.issues.extend(schema_issues(exc, path_of))
        return item
    paths = {f"lines.{i}.{col}": f"row {n}: {col}"
             for i, n in enumerate(row_numbers) for col in LINE_COLUMNS}
    paths.update({f"totals.{t}": f"row {row_numbers[0]}: total_{t}"
                  for t in ("net", "tax", "gross", "payable", "prepaid")})
    for col in ("invoice_number", "issue_date", "due_date", "currency", "type"):
        paths[col] = f"row {row_numbers[0]}: {col}"
    item.invoice = from_native(model, "csv", paths)
    return item


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
