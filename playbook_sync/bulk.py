"""Bulk vector writes: one binary COPY into a temporary table, then one UPDATE ... FROM.

A run's start stores a vector for every owed entry. Through the ORM that was one UPDATE per
row, each 1,536 floats formatted as text by pgvector's bind processor (bench/: a fifth of
the start phase at 1,000 entries). COPY in PostgreSQL's binary format sends the floats as
they are, in one stream, and pgvector's binary input (vector_recv) takes them without
parsing text.
"""

from __future__ import annotations

import io
import struct
import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

# COPY BINARY: signature, flags (no OIDs), header extension length; a tuple count of -1 ends the data.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_UUID_FIELD = struct.Struct("!hi")  # field count (2), then the uuid's length (16)
_VECTOR_FIELD = struct.Struct("!ihh")  # the vector's length in bytes, then pgvector's dim and unused (0)
_TEMP = "_bulk_vectors"


def encode(rows: Sequence[tuple[uuid.UUID, Sequence[float]]]) -> bytes:
    """(id, vector) rows in COPY's binary format for a (uuid, vector) table.

    Floats are stored as float4, as pgvector stores them: numpy's cast rounds like the C
    cast pgvector's text input ends in, so a vector reads back as float32(value) either way.
    """
    out = io.BytesIO()
    out.write(_HEADER)
    for row_id, vector in rows:
        floats = np.asarray(vector, dtype=">f4")
        if floats.ndim != 1 or not np.isfinite(floats).all():  # pgvector would refuse the whole COPY, less clearly
            raise ValueError(f"vector for {row_id} is not a finite 1-d vector")
        out.write(_UUID_FIELD.pack(2, 16))
        out.write(row_id.bytes)
        out.write(_VECTOR_FIELD.pack(4 + 4 * floats.size, floats.size, 0))
        out.write(floats.tobytes())
    out.write(_TRAILER)
    return out.getvalue()


def store_vectors(session: Session, *, table: str, rows: Sequence[tuple[uuid.UUID, Sequence[float]]], model: str) -> int:
    """Set `embedding` and `embedding_model` of the rows of `table` (by id); return how many were updated.

    Runs in the session's transaction, so it commits or rolls back with the rest of the step.
    ORM objects of these rows already in the session keep their old vectors until expired:
    callers load ids and texts only.
    """
    if not rows:
        return 0
    session.flush()  # pending ORM changes first, in the order they were made
    raw = session.connection().connection.dbapi_connection  # the session's own connection, same transaction
    with raw.cursor() as cur:
        # ON COMMIT DROP: a temporary table per transaction, nothing left on a pooled connection.
        cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_TEMP} (id uuid PRIMARY KEY, embedding vector) "
                    "ON COMMIT DROP")
        cur.execute(f"TRUNCATE {_TEMP}")  # a second call in the same transaction starts empty
        cur.copy_expert(f"COPY {_TEMP} (id, embedding) FROM STDIN WITH (FORMAT binary)", io.BytesIO(encode(rows)))
    # The table name is ours (models), never input; the column type check happens here.
    result = session.execute(text(f"UPDATE {table} AS t SET embedding = b.embedding, embedding_model = :model "
                                  f"FROM {_TEMP} AS b WHERE t.id = b.id"), {"model": model})
    return result.rowcount
