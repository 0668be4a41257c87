"""process_entry's reads: the item with its entry in one query; the run and the SOP texts once per run and process."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg2.extensions
import pytest
from sqlalchemy import event, select

from playbook_sync import demo, pipeline, store
from playbook_sync.db import get_engine
from playbook_sync.models import RunItem
from tests.support import sql_statements

pytestmark = pytest.mark.integration


def test_entries_after_the_first_do_not_read_the_run_or_the_sop_texts_again(deps):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC))[:6])
    with deps.session() as s:
        started = pipeline.start_run(s, deps)
    with sql_statements(deps.settings.database_url) as statements:  # the pooled engine every session shares
        per_entry = []
        for entry_id in started.entry_ids:
            statements.clear()
            with deps.session() as s:
                outcome = pipeline.process_entry(s, deps, run_id=started.run_id, entry_id=entry_id)
            per_entry.append((outcome, list(statements)))
    reads = lambda table, stmts: [q for q in stmts if re.search(rf"^SELECT .* FROM {table}\b", q)]  # noqa: E731
    first, later = per_entry[0][1], [q for _, stmts in per_entry[1:] for q in stmts]
    assert len(reads("cp_playbook_sync_runs", first)) == 1 and reads("cp_playbook_sync_runs", later) == []
    matched = [o for o, _ in per_entry if o["status"] != "orphaned"]
    assert matched and len(reads("cp_sop_embeddings", later)) < len(per_entry) - 1  # SOP texts come from the cache
    # The item (row-locked) and its entry: one statement; the hybrid query carries its settings.
    assert all(len([q for q in stmts if "FROM cp_sync_run_items JOIN cp_knowledge_entries" in q]) == 1 for _, stmts in per_entry)
    assert all(not any(q.startswith("SET LOCAL hnsw.ef_search") and "EXECUTE pbs_" not in q for q in stmts) for _, stmts in per_entry)
    # ... as a statement prepared once per connection (prepared.py), not planned again per entry. The run start's
    # nulls (retrieval.chance_nulls) runs the same statement, so the pooled connection may have it already.
    prepares = [q for _, stmts in per_entry for q in stmts if q.startswith("PREPARE pbs_")]
    assert len(prepares) <= 1 and all(any("EXECUTE pbs_" in q for q in stmts) for _, stmts in per_entry)


class _Counting(psycopg2.extensions.cursor):
    """A DBAPI cursor that counts the statements it sends: executemany sends one per parameter set."""

    sent = 0

    def execute(self, query, vars=None):
        type(self).sent += 1
        return super().execute(query, vars)

    def executemany(self, query, vars_list):
        vars_list = list(vars_list)
        type(self).sent += len(vars_list)
        return super().executemany(query, vars_list)


def test_an_orm_update_of_many_rows_goes_out_in_pages_not_a_statement_per_row(deps):
    # The finalize updates a run's items, matches and orphan members through the ORM: before, psycopg2's
    # executemany sent one UPDATE per row (a round trip each); execute_batch sends pages of 100.
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with deps.session() as s:
        started = pipeline.start_run(s, deps)
    engine = get_engine(deps.settings.database_url)
    engine.dispose()  # new connections, each with the counting cursor
    event.listen(engine, "connect", lambda dbapi, record: setattr(dbapi, "cursor_factory", _Counting))
    with deps.session() as s:
        items = list(s.scalars(select(RunItem).where(RunItem.run_id == started.run_id)))
        for item in items:
            item.error = "looked at"
        _Counting.sent = 0
        s.flush()
        sent = _Counting.sent
    assert len(items) == len(started.entry_ids) >= 30
    assert sent <= 2, f"{sent} statements for {len(items)} rows"
    engine.dispose()
