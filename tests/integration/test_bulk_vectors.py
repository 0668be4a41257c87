"""bulk.store_vectors on real PostgreSQL+pgvector: what the COPY writes is what the ORM path wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from playbook_sync import bulk, demo, store
from playbook_sync.db import session_scope
from playbook_sync.models import DIMENSIONS, KnowledgeEntry
from tests.support import sql_statements

pytestmark = pytest.mark.integration
TABLE = KnowledgeEntry.__tablename__


def _entries(database_url: str, n: int) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    sample = demo.entries(now)
    entries = [sample[i % len(sample)].model_copy(update={"id": uuid.uuid4()}) for i in range(n)]
    with session_scope(database_url) as s:
        store.upsert_entries(s, entries=entries)
    return [e.id for e in entries]


def _stored(database_url: str) -> dict[uuid.UUID, tuple[np.ndarray | None, str | None]]:
    with session_scope(database_url) as s:
        rows = s.execute(select(KnowledgeEntry.id, KnowledgeEntry.embedding, KnowledgeEntry.embedding_model)).all()
    # pgvector's text output is the shortest decimal of each float4: read back as float32, it is that float4.
    return {i: (None if v is None else np.asarray(v, dtype=np.float32), m) for i, v, m in rows}


def test_vectors_round_trip_exactly_as_the_orm_path_stored_them(database_url):
    ids = _entries(database_url, 4)
    rng = np.random.default_rng(7)
    vectors = [rng.standard_normal(DIMENSIONS).tolist() for _ in ids]
    vectors[0][:4] = [0.0, -0.0, 1e-30, 3.4e38]  # zero, negative zero, a subnormal-ish and a huge float4
    with session_scope(database_url) as s:
        assert bulk.store_vectors(s, table=TABLE, rows=list(zip(ids[:2], vectors[:2], strict=True)), model="m1") == 2
        for entry_id, vector in zip(ids[2:], vectors[2:], strict=True):  # the old way: pgvector's text bind
            row = s.get(KnowledgeEntry, entry_id)
            row.embedding, row.embedding_model = vector, "m1"
    stored = _stored(database_url)
    for entry_id, vector in zip(ids, vectors, strict=True):
        got, model = stored[entry_id]
        assert model == "m1"
        assert np.array_equal(got, np.asarray(vector, dtype=np.float32))  # float4 in the database, exactly


def test_no_rows_is_no_statement(database_url):
    _entries(database_url, 2)
    with sql_statements(database_url) as statements, session_scope(database_url) as s:
        assert bulk.store_vectors(s, table=TABLE, rows=[], model="m1") == 0
    assert not [st for st in statements if "UPDATE" in st or "COPY" in st]
    assert all(v is None for v, _ in _stored(database_url).values())


def test_many_rows_in_one_update_twice_in_a_transaction_and_unknown_ids_ignored(database_url):
    ids = _entries(database_url, 1500)
    rng = np.random.default_rng(11)
    first = {i: rng.standard_normal(DIMENSIONS).astype(np.float32) for i in ids}
    second = {i: rng.standard_normal(DIMENSIONS).astype(np.float32) for i in ids[:10]}
    with sql_statements(database_url) as statements, session_scope(database_url) as s:
        rows = [(i, v.tolist()) for i, v in first.items()] + [(uuid.uuid4(), np.ones(DIMENSIONS).tolist())]
        assert bulk.store_vectors(s, table=TABLE, rows=rows, model="m1") == 1500  # the stranger updates nothing
        # A second call in the same transaction (the temporary table is emptied, not re-created).
        assert bulk.store_vectors(s, table=TABLE, rows=[(i, v.tolist()) for i, v in second.items()], model="m2") == 10
    assert sum("UPDATE" in st for st in statements) == 2  # one per call, whatever the number of rows
    stored = _stored(database_url)
    assert len(stored) == 1500
    for i in ids:
        got, model = stored[i]
        want, want_model = (second[i], "m2") if i in second else (first[i], "m1")
        assert model == want_model and np.array_equal(got, want)


def test_a_rolled_back_transaction_writes_nothing_and_leaves_no_table(database_url):
    ids = _entries(database_url, 3)
    with pytest.raises(RuntimeError), session_scope(database_url) as s:
        bulk.store_vectors(s, table=TABLE, rows=[(i, [1.0] * DIMENSIONS) for i in ids], model="m1")
        raise RuntimeError("a later step of the same transaction fails")
    assert all(v is None for v, _ in _stored(database_url).values())
    with session_scope(database_url) as s:  # ON COMMIT DROP / rollback: a pooled connection starts clean
        assert bulk.store_vectors(s, table=TABLE, rows=[(ids[0], [2.0] * DIMENSIONS)], model="m1") == 1


def test_a_vector_with_nan_is_refused_before_anything_is_sent(database_url):
    ids = _entries(database_url, 1)
    with pytest.raises(ValueError, match="finite"), session_scope(database_url) as s:
        bulk.store_vectors(s, table=TABLE, rows=[(ids[0], [float("nan")] * DIMENSIONS)], model="m1")
