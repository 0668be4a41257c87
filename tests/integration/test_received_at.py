"""Migration 0003: entries get received_at; rows stored before it take their created_at (capped at now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from playbook_sync import db

pytestmark = pytest.mark.integration


def test_upgrade_backfills_received_at_and_new_rows_get_the_server_clock(database_url):
    engine = db.get_engine(database_url)
    db.downgrade(database_url, "0002")
    past, future = datetime(2026, 1, 2, 3, 4, tzinfo=UTC), datetime.now(UTC) + timedelta(days=300)
    insert = text("INSERT INTO cp_knowledge_entries (id, category, content, transcript_type, created_at) "
                  "VALUES (gen_random_uuid(), 'insight', :c, 'sales', :t)")
    with engine.begin() as conn:
        conn.execute(insert, [{"c": "old", "t": past}, {"c": "future", "t": future}])
    db.upgrade(database_url)
    with engine.begin() as conn:
        conn.execute(insert, {"c": "new", "t": past})  # a back-dated entry stored today
        got = dict(conn.execute(text("SELECT content, received_at FROM cp_knowledge_entries")).all())
        now = conn.scalar(text("SELECT now()"))
    assert got["old"] == past
    assert got["future"] <= now < future  # never received in the future
    assert got["new"] == now  # the server's clock, not the client's date
