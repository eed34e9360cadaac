"""Engine and sessions per service, each service its own database, migrations on start."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

log = logging.getLogger(__name__)

# Serialises concurrent migrators (two replicas starting at once) on one database.
_MIGRATION_LOCK_ID = 0x50325020


# SQLSTATEs of a server that is gone or not there yet: connection exceptions (class 08),
# admin/crash shutdown, "the database system is starting up".
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03")


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` is a lost or refused database connection (server down, restarting,
    unreachable), as opposed to an error of the statement itself: worth waiting for."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state is None:  # no SQLSTATE: the failure came from the connection, not a statement
        return isinstance(exc, (OperationalError, InterfaceError))
    return state.startswith("08") or state in _UNAVAILABLE_STATES


_AFTER_COMMIT = "p2p_after_commit"


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` once the session's transaction commits, never after a rollback: business
    metrics must not count work that did not happen."""
    session.info.setdefault(_AFTER_COMMIT, []).append(fn)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for fn in session.info.pop(_AFTER_COMMIT, ()):
        fn()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def one_snapshot(session: Session) -> None:
    """Make the session's next transaction REPEATABLE READ: a read endpoint that queries
    several tables then shows one moment, not a change committed between its statements.
    Call before the session's first statement."""
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


class Base(DeclarativeBase):
    """Declarative base for every service's tables (each service has its own metadata use)."""


def sqlalchemy_url(url: str, database: str | None = None) -> str:
    """Normalise any PostgreSQL URL to the psycopg 3 driver, optionally on another database."""
    u = make_url(url).set(drivername="postgresql+psycopg")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def service_database(service: str, prefix: str = "") -> str:
    return f"{prefix}p2p_{service}".replace("-", "_").replace(".", "_").lower()


def ensure_database(server_url: str, database: str) -> None:
    """Create the database if it does not exist (dev and tests; production may pre-create it)."""
    u = make_url(sqlalchemy_url(server_url))
    conninfo = u.set(drivername="postgresql", database=u.database or "postgres")
    with psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            # Another process may win the race to create it: fine.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{database}"')


class Database:
    """One engine + session factory for one service's database."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> None:
        self.url = sqlalchemy_url(url)
        # Overflow connections are closed when returned: a pool that is too small for the load
        # turns into a connection per transaction, each a PostgreSQL backend forked and warmed.
        self.engine: Engine = create_engine(
            self.url, pool_size=pool_size,
            max_overflow=pool_size // 2 if max_overflow is None else max_overflow,
            pool_pre_ping=True,
        )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessions()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def migrate(url: str, migrations_dir: Path) -> None:
    """Apply the service's Alembic migrations up to head, under an advisory lock."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    engine = create_engine(sqlalchemy_url(url), poolclass=None)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def run_migrations_from_env_py() -> None:
    """Body of every service's `migrations/env.py`: online mode on the caller's connection."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through shared.db.migrate(), which passes a connection")
    context.configure(connection=connection, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
