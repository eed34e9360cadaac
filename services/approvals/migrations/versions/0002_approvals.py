"""approval policy versions, approvals, task projection, decisions, history, delegations

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
        "policy_versions",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "approvals",
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("requisition_id", sa.Text, nullable=False),
        sa.Column("submission", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("cost_center", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("amount_base", sa.Numeric(18, 4)),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("steps", JSONB, nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("decided_at", TS),
        sa.Column("decided_by", JSONB),
        sa.Column("comment", sa.Text),
    )
    op.create_index("ix_approvals_requisition_id", "approvals", ["requisition_id", "submission"])
    op.create_table(
        "approval_tasks",
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("requisition_id", sa.Text, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("assignee", sa.Text, nullable=False),
        sa.Column("original_assignee", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("assigned_at", TS, nullable=False),
        sa.Column("due_at", TS),
        sa.Column("closed_at", TS),
    )
    op.create_index("ix_approval_tasks_workflow_id", "approval_tasks", ["workflow_id"])
    op.create_index("approval_tasks_open_by_assignee", "approval_tasks",
                    ["assignee", "assigned_at", "task_id"],
                    postgresql_where=sa.text("status = 'open'"))
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("task_id", sa.Text, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("by", sa.Text, nullable=False),
        sa.Column("on_behalf_of", sa.Text),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_approval_decisions_workflow_id", "approval_decisions", ["workflow_id"])
    op.create_table(
        "approval_history",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("detail", JSONB, nullable=False),
    )
    op.create_index("ix_approval_history_workflow_id", "approval_history", ["workflow_id"])
    op.create_table(
        "delegations",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("delegate_to", sa.Text, nullable=False),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("ends_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_delegations_delegate_to", "delegations", ["delegate_to"])
    op.create_table(
        "applied_steps",
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("step", sa.Text, primary_key=True),
        sa.Column("applied_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("applied_steps", "delegations", "approval_history", "approval_decisions",
                  "approval_tasks", "approvals", "policy_versions"):
        op.drop_table(table)
