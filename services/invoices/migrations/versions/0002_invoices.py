"""invoices, their supplier keys (exact-duplicate constraint), originals, status history,
supplier directory

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("source_format", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("invoice_number", sa.Text, nullable=False),
        sa.Column("number_norm", sa.Text, nullable=False),
        sa.Column("supplier_id", sa.Text),
        sa.Column("supplier_name", sa.Text),
        sa.Column("issue_date", sa.Date, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("gross", sa.Numeric, nullable=False),
        sa.Column("payable", sa.Numeric, nullable=False),
        sa.Column("order_reference", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("flags", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("duplicate_of", sa.Text),
        sa.Column("document", postgresql.JSONB, nullable=False),
        sa.Column("match", postgresql.JSONB),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("invoices_status_seq", "invoices", ["status", "seq"])
    op.create_index("invoices_supplier_seq", "invoices", ["supplier_id", "seq"])
    op.create_index("invoices_order_reference_seq", "invoices", ["order_reference", "seq"])
    op.create_table(
        "invoice_supplier_keys",
        sa.Column("supplier_key", sa.Text, nullable=False),
        sa.Column("number_norm", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.id"), nullable=False),
        sa.PrimaryKeyConstraint("supplier_key", "number_norm", "type"),
    )
    op.create_index("ix_invoice_supplier_keys_invoice_id", "invoice_supplier_keys", ["invoice_id"])
    op.create_table(
        "invoice_originals",
        sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.id"), primary_key=True),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "invoice_status_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text),
        sa.Column("event_id", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_invoice_status_history_invoice_id", "invoice_status_history",
                    ["invoice_id"])
    op.create_table(
        "supplier_directory",
        sa.Column("identifier", sa.Text, primary_key=True),
        sa.Column("supplier_id", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("supplier_directory")
    op.drop_table("invoice_status_history")
    op.drop_table("invoice_originals")
    op.drop_table("invoice_supplier_keys")
    op.drop_table("invoices")
