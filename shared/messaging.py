"""The outbox and inbox tables every service has in its own database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)

metadata = MetaData()

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("topic", Text, nullable=False),  # logical name; the relay adds the prefix
    Column("message_key", Text, nullable=False),
    Column("event_id", Text, nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("correlation_id", Text),
    Column("causation_id", Text),
    Column("payload", Text, nullable=False),  # the JSON `data`, serialised once at write time
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Index("outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "event_id"),
)


def create_messaging_tables(op) -> None:  # noqa: ANN001 - alembic's op proxy
    """Called from each service's first migration."""
    bind = op.get_bind()
    metadata.create_all(bind, checkfirst=True)


def drop_messaging_tables(op) -> None:  # noqa: ANN001
    metadata.drop_all(op.get_bind(), checkfirst=True)
