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

# Before anything reads settings: no dotenv file, in this process or in the workers and CLIs it
# starts (they inherit the environment), so a stray ./.env in whatever directory the tests run
# from (or a developer's .env in the checkout, the worker's cwd) cannot change a test; nor can
# the shell's settings or provider keys (LLM=auto would pick a real, paid provider).
for _name in [n for n in os.environ if n.upper().startswith("PLAYBOOK_SYNC_")
              or n.upper() in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")]:
    del os.environ[_name]
os.environ["PLAYBOOK_SYNC_ENV_FILE"] = os.devnull  # not a regular file: no dotenv is read

from playbook_sync import db  # noqa: E402
from playbook_sync.config import Settings, get_settings  # noqa: E402
from playbook_sync.local_services import postgres_url, start_postgres, start_redis  # noqa: E402

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


@pytest.fixture(autouse=True)
def fresh_settings_cache():
    """Each test reads settings afresh (and leaves no cached settings behind for the next one)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> str:
    """One embedded Redis (Valkey) for the session; nothing global points at it (see redis_url)."""
    server, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    # Finalize leftover AsyncResults (they unsubscribe from Redis in __del__) while Redis is up.
    gc.collect()
    server.stop()


@pytest.fixture
def redis_url(redis_server, monkeypatch) -> str:
    """The session's Redis as this test's broker: the environment and the test process's Celery
    app point at it for this test only, so no test depends on one that ran before it."""
    from playbook_sync.worker.app import app

    monkeypatch.setenv("PLAYBOOK_SYNC_BROKER_URL", redis_server)
    before = {"broker_url": app.conf.broker_url, "result_backend": app.conf.result_backend}
    app.conf.update(broker_url=redis_server, result_backend=redis_server)
    _drop_stale_backend(app, redis_server)
    yield redis_server
    app.conf.update(before)
    _drop_stale_backend(app, before["result_backend"])


def _drop_stale_backend(app, url: str) -> None:
    """Forget a result backend this thread built for another URL: Celery builds app.backend once and keeps
    it whatever the configuration says after (a test that touched it before any redis_url test left this
    process's chords talking to 127.0.0.1:6379)."""
    cached = app._backend_cache or getattr(app._local, "backend", None)
    if cached is not None and getattr(cached, "url", None) != url:
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)


@pytest.fixture
def settings(database_url, tmp_path: Path, request) -> Settings:
    """Settings for one test: its own database, data dir and playbook repository.

    The broker is the session Redis only for tests that ask for redis_url (explicitly, not
    through whatever an earlier test left in the environment).
    """
    broker = request.getfixturevalue("redis_url") if "redis_url" in request.fixturenames else None
    return Settings(
        _env_file=None,
        database_url=database_url,
        broker_url=broker,
        data_dir=tmp_path / "data",
        repo_path=tmp_path / "playbook",
    )
