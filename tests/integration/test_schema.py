"""Migrations and the schema on the embedded PostgreSQL with pgvector."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from playbook_sync import db

pytestmark = pytest.mark.integration

TABLES = {
    "cp_knowledge_entries", "cp_sop_embeddings", "cp_sop_sections", "cp_playbook_sync_runs",
    "cp_knowledge_sop_matches", "cp_sync_run_items", "cp_inserted_callouts", "cp_orphan_clusters",
    "cp_orphan_members", "cp_llm_calls", "cp_callout_states", "cp_lessons", "cp_run_learning",
}


def _tables(url: str) -> set[str]:
    engine = db.get_engine(url)
    engine.dispose()
    return set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(database_url):
    assert _tables(database_url) >= TABLES
    db.downgrade(database_url, "base")
    assert not (TABLES & _tables(database_url))
    with db.get_engine(database_url).connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")) == 0
    db.upgrade(database_url)
    assert _tables(database_url) >= TABLES
    with db.get_engine(database_url).connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")) == 1
        index = conn.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_cp_sop_sections_embedding_hnsw'"))
        dims = conn.scalar(text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'cp_knowledge_entries'::regclass AND attname = 'embedding'"))
    assert "hnsw" in index and "vector_cosine_ops" in index
    assert dims == "vector(1536)"


def test_one_running_run_is_enforced_by_the_database(database_url):
    engine = db.get_engine(database_url)
    insert = text("INSERT INTO cp_playbook_sync_runs (id, window_end, status) VALUES (gen_random_uuid(), now(), :s)")
    with engine.begin() as conn:
        conn.execute(insert, {"s": "running"})
        conn.execute(insert, {"s": "success"})
        conn.execute(insert, {"s": "success"})
    with pytest.raises(IntegrityError, match="uq_cp_playbook_sync_runs_one_running"), engine.begin() as conn:
        conn.execute(insert, {"s": "running"})


def test_models_and_migrations_agree(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import playbook_sync.builder.tables  # noqa: F401  (the builder's tables share Base)
    from playbook_sync import models_learning  # noqa: F401  (issue 14's tables)
    from playbook_sync.models import Base
    from playbook_sync.models_reports import PlaybookReport  # noqa: F401  (registers the report tables)

    with db.get_engine(database_url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
