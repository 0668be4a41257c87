"""Engine and session factory, and Alembic upgrades; nothing connects at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent  # the checkout, or site-packages of an installed wheel
MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # package data: shipped in the wheel
CONNECT_TIMEOUT = 10  # seconds to open a PostgreSQL connection
MAX_CONNECTIONS = 70  # per engine: above the LLM worker's threads (up to 64, bench --curve)


def transient(exc: BaseException) -> bool:
    """A database error that retrying the whole unit of work can outlive: the server restarting or the
    connection lost (psycopg2's OperationalError), a deadlock or serialization failure (subclasses of it)."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One pooled engine per URL per process (workers share it across threads)."""
    # libpq waits for a black-holed host as long as TCP does (minutes); a URL's own
    # connect_timeout still wins.
    args = {"connect_timeout": CONNECT_TIMEOUT} if url.startswith("postgresql") and "connect_timeout=" not in url else {}
    # A threads-pool worker holds a connection per thread while the model answers (process_entry is one
    # transaction), so the pool must cover the LLM worker's threads (up to 64, bench --curve). Connections
    # are opened only when needed, and every one opened is kept: an "overflow" connection closed at check-in
    # and opened again by the next task costs a PostgreSQL backend start and re-preparing (prepared.py).
    # values_plus_batch: the ORM's UPDATEs of many rows (a run's items, matches, orphan members at finalize) go in
    # pages of execute_batch, not one round trip per row (nothing here reads an executemany's rowcount).
    return create_engine(url, pool_pre_ping=True, pool_size=MAX_CONNECTIONS, max_overflow=0, future=True, connect_args=args,
                         executemany_mode="values_plus_batch")


@contextmanager
def committing(session: Session) -> Iterator[Session]:
    """Commit the session on success, roll it back on error, close it either way."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@lru_cache(maxsize=8)
def _session_factory(engine: Engine) -> sessionmaker:
    # One per engine: each sessionmaker() makes a Session subclass of its own, whose event dispatch SQLAlchemy
    # then builds again on first use; made per session, that was ~2% of a worker's CPU per entry (py-spy).
    return sessionmaker(engine, expire_on_commit=False)


def session_scope(url: str):
    """A session on the URL's engine that commits on success and rolls back on error."""
    return committing(_session_factory(get_engine(url))())


def alembic_config(url: str):
    """Alembic config pointing at our migrations with the given database URL."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to revision."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Revert migrations down to revision."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check(url: str) -> None:
    """Connect once to a configured database (bounded by CONNECT_TIMEOUT); a ConfigError names the setting."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from playbook_sync.errors import ConfigError, one_line

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise ConfigError("PLAYBOOK_SYNC_DATABASE_URL", "not a database URL "
                          "(expected postgresql+psycopg2://user:password@host:port/name)") from None
    if make_url(url).get_backend_name() != "postgresql":  # another dialect fails later, deep in the driver's options
        raise ConfigError("PLAYBOOK_SYNC_DATABASE_URL", f"{shown} is not PostgreSQL (with pgvector); "
                          "use postgresql+psycopg2://user:password@host:port/name")
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise ConfigError("PLAYBOOK_SYNC_DATABASE_URL", f"cannot connect to {shown}: {one_line(str(exc.orig))}") from None
    except (ArgumentError, ImportError) as exc:  # an unknown dialect, or one whose driver is not installed
        raise ConfigError("PLAYBOOK_SYNC_DATABASE_URL", f"cannot use {shown} ({one_line(str(exc))}); "
                          "use postgresql+psycopg2://user:password@host:port/name") from None


EF_SEARCH_MAX = 1000  # pgvector refuses a larger hnsw.ef_search


def on_hnsw_index(session: Session, statement, params: dict | None = None, *, ef_search: int) -> list:
    """The rows of a nearest-neighbour statement, searched on the HNSW index with this ef_search.

    A higher ef_search raises the index's cost estimate until the planner prefers an exact sequential
    scan (a sort per query vector): ~60x slower at 100k vectors, 10x for the calibration null at 1,000
    SOPs once autovacuum has analyzed the sections. Sequential scans are off for this statement only:
    the transaction goes on (pgvector's README suggests the same; on a small table the index's answer
    is as good as exact anyway)."""
    from sqlalchemy import text

    session.execute(text(f"SET LOCAL hnsw.ef_search = {int(ef_search)}; SET LOCAL enable_seqscan = off"))
    rows = session.execute(statement, params or {}).all()
    session.execute(text("SET LOCAL enable_seqscan = on"))
    return rows
