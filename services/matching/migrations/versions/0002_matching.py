"""matching read model, decisions, deadlines, exceptions, tolerance versions

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tolerance_policies",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "purchase_orders",
        sa.Column("po_number", sa.Text, primary_key=True),  # normalised (upper-case)
        sa.Column("po_id", sa.Text, nullable=False, unique=True),
        sa.Column("requisition_id", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("supplier_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="issued"),
        sa.Column("closed_reason", sa.Text),
        sa.Column("document", JSONB, nullable=False),  # domain po_to_json shape
        sa.Column("issued_at", TS),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "receipts",
        sa.Column("receipt_id", sa.Text, primary_key=True),
        sa.Column("po_number", sa.Text, nullable=False, index=True),
        sa.Column("lines", JSONB, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_table(
        "invoices",
        sa.Column("invoice_id", sa.Text, primary_key=True),
        sa.Column("invoice_number", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("supplier_id", sa.Text),
        sa.Column("order_reference", sa.Text),  # normalised PO number the invoice quotes
        sa.Column("po_number", sa.Text, index=True),  # the PO it is matched against, once known
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("payable", sa.Numeric, nullable=False),
        sa.Column("preceding_invoice_id", sa.Text),
        sa.Column("document", JSONB, nullable=False),  # domain invoice_to_json shape
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("counts", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("received_at", TS, nullable=False),  # intake's receipt time
        sa.Column("first_seen_at", TS, nullable=False),  # matching's; po_wait starts here
        sa.Column("awaiting_since", TS),
        sa.Column("deadline", TS),
        sa.Column("final_outcome", sa.Text),  # first final decision: matched | exception
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("invoices_due", "invoices", ["deadline"],
                    postgresql_where=sa.text("deadline IS NOT NULL"))
    op.create_index("invoices_order_reference", "invoices", ["order_reference", "state"])
    op.create_table(
        "invoiced_lines",
        sa.Column("invoice_id", sa.Text, nullable=False),
        sa.Column("po_number", sa.Text, nullable=False),
        sa.Column("po_line_no", sa.Integer, nullable=False),
        sa.Column("quantity", sa.Numeric, nullable=False),  # negative for credit notes
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", "seq"),
    )
    op.create_index("invoiced_lines_po", "invoiced_lines", ["po_number", "po_line_no"])
    op.create_table(
        "match_decisions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("invoice_id", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("po_number", sa.Text),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("checks", JSONB, nullable=False),
        sa.Column("inputs", JSONB, nullable=False),
        sa.UniqueConstraint("invoice_id", "seq"),
    )
    op.create_table(
        "exceptions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("invoice_id", sa.Text, nullable=False),
        sa.Column("invoice_number", sa.Text, nullable=False),
        sa.Column("po_number", sa.Text),
        sa.Column("supplier_id", sa.Text),
        sa.Column("requester", sa.Text),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("reasons", JSONB, nullable=False),
        sa.Column("match_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("assignee", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("resolution", JSONB),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    # One open exception per invoice.
    op.create_index("exceptions_one_open", "exceptions", ["invoice_id"], unique=True,
                    postgresql_where=sa.text("status <> 'resolved'"))
    op.create_index("exceptions_queue", "exceptions", ["status", "created_at", "id"])
    op.create_table(
        "exception_audit",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("exception_id", sa.Text, nullable=False, index=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("detail", JSONB, nullable=False),
    )


def downgrade() -> None:
    for table in ("exception_audit", "exceptions", "match_decisions", "invoiced_lines",
                  "invoices", "receipts", "purchase_orders", "tolerance_policies"):
        op.drop_table(table)
