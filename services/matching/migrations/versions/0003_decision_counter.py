"""invoices.decisions: the number of match runs, the next decision's sequence number

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("decisions", sa.Integer, nullable=False,
                                        server_default="0"))
    op.execute("UPDATE invoices SET decisions = (SELECT count(*) FROM match_decisions d "
               "WHERE d.invoice_id = invoices.invoice_id)")


def downgrade() -> None:
    op.drop_column("invoices", "decisions")
