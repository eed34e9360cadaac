"""Tables of the approvals service and every query it makes.

`approval_tasks` is the inbox projection: activities keep it current, `GET /inbox` reads only
it (partial index on open tasks by assignee), never Temporal. `applied_steps` makes every
activity idempotent: a step (workflow id + step key) has its effect once, however often the
activity is retried.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    Numeric,
    Text,
    and_,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from shared import pagination


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON().with_variant(JSONB(), "postgresql"),
                           list[Any]: JSON().with_variant(JSONB(), "postgresql")}


class PolicyVersion(Base):
    __tablename__ = "policy_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Approval(Base):
    __tablename__ = "approvals"
    workflow_id: Mapped[str] = mapped_column(Text, primary_key=True)
    requisition_id: Mapped[str] = mapped_column(Text, index=True)
    submission: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(Text)
    cost_center: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    currency: Mapped[str] = mapped_column(Text)
    amount_base: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    policy_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text)  # pending|approved|rejected|changes_requested|cancelled
    steps: Mapped[list[Any]]
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[list[Any] | None]
    comment: Mapped[str | None] = mapped_column(Text)


class Task(Base):
    __tablename__ = "approval_tasks"
    task_id: Mapped[str] = mapped_column(Text, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(Text, index=True)
    requisition_id: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(Text)
    assignee: Mapped[str] = mapped_column(Text)
    original_assignee: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    currency: Mapped[str] = mapped_column(Text)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("approval_tasks_open_by_assignee", "assignee", "assigned_at", "task_id",
              postgresql_where=text("status = 'open'")),
    )


class Decision(Base):
    __tablename__ = "approval_decisions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(Text, index=True)
    task_id: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer)
    by: Mapped[str] = mapped_column(Text)
    on_behalf_of: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HistoryEntry(Base):
    __tablename__ = "approval_history"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(Text, index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]]


class DelegationRow(Base):
    __tablename__ = "delegations"
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    delegate_to: Mapped[str] = mapped_column(Text, index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AppliedStep(Base):
    __tablename__ = "applied_steps"
    workflow_id: Mapped[str] = mapped_column(Text, primary_key=True)
    step: Mapped[str] = mapped_column(Text, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# -- idempotency ---------------------------------------------------------------------------

def claim_step(session: Session, workflow_id: str, step: str) -> bool:
    """True the first time (workflow id, step) is seen in a committed transaction."""
    row = session.execute(
        pg_insert(AppliedStep).values(workflow_id=workflow_id, step=step)
        .on_conflict_do_nothing().returning(AppliedStep.step)
    ).first()
    return row is not None


# -- policy --------------------------------------------------------------------------------

def latest_policy_version(session: Session) -> int | None:
    return session.scalar(select(func.max(PolicyVersion.version)))


def policy_version(session: Session, version: int) -> PolicyVersion | None:
    return session.get(PolicyVersion, version)


def add_policy(session: Session, document: dict[str, Any], created_by: str) -> int:
    """Append a version; concurrent writers serialise on an advisory lock."""
    session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": 0x50325030})
    current = session.scalar(select(func.max(PolicyVersion.version))) or 0
    session.add(PolicyVersion(version=current + 1, document=document, created_by=created_by))
    session.flush()
    return current + 1


# -- approvals -----------------------------------------------------------------------------

def insert_approval(session: Session, **values: Any) -> bool:
    row = session.execute(
        pg_insert(Approval).values(**values).on_conflict_do_nothing().returning(Approval.workflow_id)
    ).first()
    return row is not None


def get_approval(session: Session, workflow_id: str) -> Approval | None:
    return session.get(Approval, workflow_id)


def latest_approval(session: Session, requisition_id: str) -> Approval | None:
    return session.scalars(
        select(Approval).where(Approval.requisition_id == requisition_id)
        .order_by(Approval.submission.desc()).limit(1)
    ).first()


def finish_approval(session: Session, workflow_id: str, status: str, decided_at: datetime,
                    decided_by: list[str], comment: str | None) -> None:
    session.execute(update(Approval).where(Approval.workflow_id == workflow_id).values(
        status=status, decided_at=decided_at, decided_by=decided_by, comment=comment))


def add_history(session: Session, workflow_id: str, at: datetime, kind: str,
                **detail: Any) -> None:
    session.add(HistoryEntry(workflow_id=workflow_id, at=at, kind=kind,
                             detail={k: v for k, v in detail.items() if v is not None}))


def history(session: Session, workflow_id: str) -> list[HistoryEntry]:
    return list(session.scalars(select(HistoryEntry).where(HistoryEntry.workflow_id == workflow_id)
                                .order_by(HistoryEntry.at, HistoryEntry.id)))


# -- tasks ---------------------------------------------------------------------------------

def upsert_task(session: Session, **values: Any) -> None:
    stmt = pg_insert(Task).values(original_assignee=values["assignee"], status="open", **values)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[Task.task_id],
        set_={"assignee": stmt.excluded.assignee, "assigned_at": stmt.excluded.assigned_at,
              "due_at": stmt.excluded.due_at},
    ))


def get_task(session: Session, task_id: str) -> Task | None:
    return session.get(Task, task_id)


def tasks_of(session: Session, workflow_id: str) -> list[Task]:
    return list(session.scalars(select(Task).where(Task.workflow_id == workflow_id)
                                .order_by(Task.level, Task.original_assignee)))


def close_task(session: Session, task_id: str, status: str, at: datetime) -> None:
    session.execute(update(Task).where(Task.task_id == task_id).values(status=status, closed_at=at))


def close_open_tasks(session: Session, task_ids: list[str], status: str, at: datetime) -> int:
    result = session.execute(update(Task).where(Task.task_id.in_(task_ids), Task.status == "open")
                             .values(status=status, closed_at=at))
    return result.rowcount or 0


def count_open_tasks(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Task).where(Task.status == "open")) or 0


def encode_cursor(assigned_at: datetime, task_id: str) -> str:
    return pagination.encode_cursor(assigned_at.isoformat(), task_id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on anything that is not a cursor this service issued."""
    assigned_at, task_id = pagination.decode_cursor(cursor, 2)
    return datetime.fromisoformat(assigned_at), str(task_id)


def inbox(session: Session, user_id: str, now: datetime, limit: int,
          after: tuple[datetime, str] | None = None) -> list[tuple[Task, str | None]]:
    """Open tasks of `user_id` and of everyone whose delegate they are at `now`.

    Returns (task, on_behalf_of) pairs; on_behalf_of is the absent assignee for delegated ones.
    """
    principals = select(DelegationRow.user_id).where(
        DelegationRow.delegate_to == user_id, DelegationRow.starts_at <= now,
        DelegationRow.ends_at > now)
    stmt = select(Task).where(Task.status == "open",
                              or_(Task.assignee == user_id, Task.assignee.in_(principals)))
    if after is not None:
        stmt = stmt.where(tuple_(Task.assigned_at, Task.task_id) > tuple_(*after))
    rows = session.scalars(stmt.order_by(Task.assigned_at, Task.task_id).limit(limit)).all()
    return [(t, None if t.assignee == user_id else t.assignee) for t in rows]


# -- decisions -----------------------------------------------------------------------------

def add_decision(session: Session, **values: Any) -> None:
    session.add(Decision(**values))


def decisions_of(session: Session, workflow_id: str) -> list[Decision]:
    return list(session.scalars(select(Decision).where(Decision.workflow_id == workflow_id)
                                .order_by(Decision.at, Decision.id)))


# -- delegations ---------------------------------------------------------------------------

def set_delegation(session: Session, user_id: str, delegate_to: str, starts_at: datetime,
                   ends_at: datetime) -> None:
    stmt = pg_insert(DelegationRow).values(user_id=user_id, delegate_to=delegate_to,
                                           starts_at=starts_at, ends_at=ends_at)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[DelegationRow.user_id],
        set_={"delegate_to": stmt.excluded.delegate_to, "starts_at": stmt.excluded.starts_at,
              "ends_at": stmt.excluded.ends_at, "created_at": func.now()}))


def delete_delegation(session: Session, user_id: str) -> bool:
    row = session.get(DelegationRow, user_id)
    if row is None:
        return False
    session.delete(row)
    return True


def get_delegation(session: Session, user_id: str) -> DelegationRow | None:
    return session.get(DelegationRow, user_id)


def active_delegate(session: Session, user_id: str, now: datetime) -> str | None:
    return session.scalar(select(DelegationRow.delegate_to).where(
        DelegationRow.user_id == user_id, DelegationRow.starts_at <= now,
        DelegationRow.ends_at > now))


def principals_of(session: Session, delegate: str, now: datetime) -> list[str]:
    """Users whose current delegate `delegate` is."""
    return list(session.scalars(select(DelegationRow.user_id).where(
        and_(DelegationRow.delegate_to == delegate, DelegationRow.starts_at <= now,
             DelegationRow.ends_at > now))))
