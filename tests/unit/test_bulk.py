"""bulk.encode: PostgreSQL's binary COPY format for (uuid, vector) rows, read back byte by byte."""

from __future__ import annotations

import struct
import uuid

import numpy as np
import pytest

from playbook_sync import bulk

pytestmark = pytest.mark.unit


def decode(data: bytes) -> list[tuple[uuid.UUID, list[float]]]:
    """The reader side of the format (as PostgreSQL's COPY FROM ... binary and pgvector's vector_recv read it)."""
    assert data[:11] == b"PGCOPY\n\xff\r\n\x00" and struct.unpack("!ii", data[11:19]) == (0, 0)
    at, rows = 19, []
    while True:
        (fields,) = struct.unpack_from("!h", data, at)
        at += 2
        if fields == -1:
            assert at == len(data)
            return rows
        assert fields == 2
        (size,) = struct.unpack_from("!i", data, at)
        row_id = uuid.UUID(bytes=data[at + 4 : at + 4 + size])
        at += 4 + size
        size, dim, unused = struct.unpack_from("!ihh", data, at)
        assert size == 4 + 4 * dim and unused == 0
        rows.append((row_id, list(struct.unpack_from(f"!{dim}f", data, at + 8))))
        at += 4 + size


def test_rows_encode_as_big_endian_float4_vectors_with_their_ids():
    ids = [uuid.uuid4() for _ in range(3)]
    vectors = [[0.1, -2.5, 3e-8], np.array([1.0, 0.0, -0.0]), [1 / 3] * 3]
    got = decode(bulk.encode(list(zip(ids, vectors, strict=True))))
    assert [i for i, _ in got] == ids
    for (_, back), sent in zip(got, vectors, strict=True):
        assert back == [float(x) for x in np.asarray(sent, dtype=np.float32)]  # float4, as pgvector stores it


def test_no_rows_is_header_and_trailer_only():
    assert decode(bulk.encode([])) == []


@pytest.mark.parametrize("bad", [[float("nan"), 1.0], [float("inf")], [[1.0], [2.0]]])
def test_a_vector_pgvector_would_refuse_is_refused_here_by_id(bad):
    row_id = uuid.uuid4()
    with pytest.raises(ValueError, match=str(row_id)):
        bulk.encode([(row_id, bad)])
