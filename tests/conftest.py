"""Shared fixtures: embedded PostgreSQL+pgvector and Redis, started once per session."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest

from playbook_sync import db
from playbook_sync.config import Settings
from playbook_sync.embedded import postgres_url, start_postgres, start_redis

TEMPLATE = "ps_template"


def _admin_sql(socket_dir: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    conn = psycopg2.connect(dbname="postgres", user="postgres", host=socket_dir)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_socket() -> str:
    """One embedded PostgreSQL for the session, with a migrated template database."""
    # Not under pytest's tmp dirs: pytest prunes old ones while a server may still be stopping.
    data_dir = Path(tempfile.mkdtemp(prefix="playbook-sync-pg-"))
    server, url = start_postgres(data_dir, database=TEMPLATE)
    socket_dir = str(server.get_postmaster_info().socket_dir)
    db.upgrade(url)
    db.get_engine(url).dispose()
    yield socket_dir
    server._cleanup()  # stop it now rather than at interpreter exit
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def database_url(pg_socket) -> str:
    """A fresh migrated database per test (copied from the template: fast)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin_sql(pg_socket, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = postgres_url(pg_socket, name)
    yield url
    db.get_engine(url).dispose()
    _admin_sql(pg_socket, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """One embedded Redis (Valkey) for the session; the test process's Celery app uses it."""
    server, url = start_redis(tmp_path_factory.mktemp("redis"))
    os.environ["PLAYBOOK_SYNC_BROKER_URL"] = url
    from worker.app import app

    app.conf.update(broker_url=url, result_backend=url)
    yield url
    # Finalize leftover AsyncResults (they unsubscribe from Redis in __del__) while Redis is up.
    gc.collect()
    server.stop()


@pytest.fixture
def settings(database_url, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, data dir and playbook repository."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        broker_url=os.environ.get("PLAYBOOK_SYNC_BROKER_URL"),
        data_dir=tmp_path / "data",
        repo_path=tmp_path / "playbook",
    )
