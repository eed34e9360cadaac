"""suppliers, requisitions, purchase orders, goods receipts

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
    op.execute("CREATE SEQUENCE po_number_seq START 1 NO CYCLE")
    op.create_table(
        "suppliers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("vat_id", sa.Text, unique=True),
        sa.Column("peppol_id", sa.Text, unique=True),
        sa.Column("identifiers", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("currency", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_table(
        "requisitions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("requester", sa.Text, nullable=False, index=True),
        sa.Column("requester_name", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("cost_center", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("needed_by", sa.Date),
        sa.Column("justification", sa.Text),
        sa.Column("status", sa.Text, nullable=False, index=True),
        sa.Column("submission", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total", sa.Numeric, nullable=False),
        sa.Column("approval", JSONB),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "requisition_lines",
        sa.Column("requisition_id", sa.Text, sa.ForeignKey("requisitions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("quantity", sa.Numeric, nullable=False),
        sa.Column("uom", sa.Text, nullable=False),
        sa.Column("unit_price", sa.Numeric, nullable=False),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("supplier_id", sa.Text, sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("receipt_required", sa.Boolean, nullable=False),
        sa.CheckConstraint("quantity > 0", name="requisition_lines_quantity_positive"),
        sa.CheckConstraint("unit_price >= 0", name="requisition_lines_price_non_negative"),
    )
    op.create_table(
        "requisition_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("requisition_id", sa.Text, sa.ForeignKey("requisitions.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_table(
        "purchase_orders",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("number", sa.Text, nullable=False, unique=True),
        sa.Column("requisition_id", sa.Text, sa.ForeignKey("requisitions.id"), nullable=False),
        sa.Column("requester", sa.Text, nullable=False, index=True),
        sa.Column("cost_center", sa.Text, nullable=False),
        sa.Column("supplier_id", sa.Text, sa.ForeignKey("suppliers.id"), nullable=False,
                  index=True),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, index=True),
        sa.Column("total", sa.Numeric, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("closed_at", TS),
        sa.Column("close_reason", sa.Text),
        sa.UniqueConstraint("requisition_id", "supplier_id", name="purchase_orders_one_per_supplier"),
    )
    op.create_table(
        "po_lines",
        sa.Column("po_id", sa.Text, sa.ForeignKey("purchase_orders.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("requisition_line_no", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("quantity", sa.Numeric, nullable=False),
        sa.Column("uom", sa.Text, nullable=False),
        sa.Column("unit_price", sa.Numeric, nullable=False),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("receipt_required", sa.Boolean, nullable=False),
        sa.Column("received_quantity", sa.Numeric, nullable=False, server_default="0"),
        sa.CheckConstraint("received_quantity >= 0", name="po_lines_received_non_negative"),
    )
    op.create_table(
        "receipts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("po_id", sa.Text, sa.ForeignKey("purchase_orders.id"), nullable=False,
                  index=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_table(
        "receipt_lines",
        sa.Column("receipt_id", sa.Text, sa.ForeignKey("receipts.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("quantity", sa.Numeric, nullable=False),
    )


def downgrade() -> None:
    for table in ("receipt_lines", "receipts", "po_lines", "purchase_orders",
                  "requisition_history", "requisition_lines", "requisitions", "suppliers"):
        op.drop_table(table)
    op.execute("DROP SEQUENCE po_number_seq")
