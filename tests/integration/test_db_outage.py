"""PostgreSQL going away under a worker: the chord still reaches its callback, prepared statements recover."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from playbook_sync import db, demo, prepared
from playbook_sync.config import get_settings
from playbook_sync.providers.localgit import init_repo

pytestmark = pytest.mark.integration


def test_an_entry_task_whose_database_is_gone_retries_then_returns_instead_of_raising(tmp_path, monkeypatch):
    # A header task that raises stops the chord: finalize_run never runs and the run waits, 'running',
    # for a callback that never comes (a PostgreSQL restart mid-run did exactly that). Nothing listens on
    # port 1: every attempt fails to connect, the task retries it as transient, then cannot even record the
    # failure; it must still return, so the callback runs (and marks the still-pending item failed).
    from playbook_sync.worker import tasks

    init_repo(tmp_path / "playbook", demo.playbook_files(), branch="main")
    monkeypatch.setenv("PLAYBOOK_SYNC_DATABASE_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("PLAYBOOK_SYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLAYBOOK_SYNC_REPO_PATH", str(tmp_path / "playbook"))
    monkeypatch.setenv("PLAYBOOK_SYNC_TASK_MAX_RETRIES", "2")
    monkeypatch.setenv("PLAYBOOK_SYNC_TASK_RETRY_BACKOFF", "0")
    get_settings.cache_clear()  # importing the worker app read the settings before the variables above
    tasks.deps.cache_clear()
    try:
        result = tasks.process_entry.apply(args=(str(uuid.uuid4()), str(uuid.uuid4())))  # eager: retries run inline
    finally:
        tasks.deps.cache_clear()
    assert result.successful(), result.traceback
    assert result.result["status"] == "failed" and result.result["recorded"] is False
    assert result.result["error"].startswith("gave up after 3 attempts: (psycopg2.OperationalError)")


def test_statements_the_server_dropped_are_prepared_again(database_url):
    # DEALLOCATE ALL (or DISCARD ALL, as a pooler or an admin may send) drops the connection's prepared
    # statements while the pool still records them: the next use fails, the one after prepares again.
    engine = create_engine(database_url, pool_size=1, max_overflow=0)  # one connection: always the same one
    sql = "SELECT :x::int + 1"
    try:
        with Session(engine) as session:
            assert prepared.execute(session, sql, {"x": 1}).scalar() == 2
            session.commit()
            session.execute(text("DEALLOCATE ALL"))
            session.commit()
            with pytest.raises(DBAPIError, match="does not exist"):
                prepared.execute(session, sql, {"x": 2})
            session.rollback()
            assert prepared.execute(session, sql, {"x": 3}).scalar() == 4
            assert db.transient(DBAPIError("x", {}, Exception(), connection_invalidated=True))
    finally:
        engine.dispose()


def test_following_a_run_outlasts_a_database_restart_but_not_an_outage(monkeypatch):
    # `run --wait` polls the run's rows: a PostgreSQL restart ("the database system is starting up") must not
    # end the command while the workers carry on; a database gone for longer than DB_GRACE still does.
    import time

    from sqlalchemy.exc import OperationalError

    from playbook_sync.worker import local

    monkeypatch.setattr(local, "DB_GRACE", 1.0)
    started = time.monotonic()
    with pytest.raises(OperationalError):
        local.follow_run("postgresql+psycopg2://nobody@127.0.0.1:1/none", uuid.uuid4(), deadline=started + 60, poll=0.1)
    assert 1.0 <= time.monotonic() - started < 30  # kept polling through the grace, then gave up (not at the deadline)



def test_finalize_whose_database_is_gone_is_retried_not_dropped(tmp_path, monkeypatch):
    # Hostile finding: a 30 s outage outlasted the entries' retries, then finalize_run met the dead database
    # once and gave up: the run stayed 'running' and every later run was refused. The callback is retried
    # while the database cannot be reached (eager here: the retries run inline, without their countdown).
    from playbook_sync import finalize
    from playbook_sync.worker import tasks

    init_repo(tmp_path / "playbook", demo.playbook_files(), branch="main")
    monkeypatch.setenv("PLAYBOOK_SYNC_DATABASE_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("PLAYBOOK_SYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLAYBOOK_SYNC_REPO_PATH", str(tmp_path / "playbook"))
    monkeypatch.setattr(tasks, "FINALIZE_RETRIES", 2)
    attempts = []
    real = finalize.finalize_or_fail
    monkeypatch.setattr(finalize, "finalize_or_fail", lambda d, **kw: attempts.append(1) or real(d, **kw))
    get_settings.cache_clear()
    tasks.deps.cache_clear()
    try:
        result = tasks.finalize_run.apply(args=(str(uuid.uuid4()),))
    finally:
        tasks.deps.cache_clear()
    assert len(attempts) == 3 and result.failed()  # the first try and 2 retries, then the error is the task's
