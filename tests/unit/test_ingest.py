"""JSONL ingest: every bad line is named with its number and reason; good lines load."""

from __future__ import annotations

import json
import uuid

import pytest

from playbook_sync.ingest import parse_jsonl

pytestmark = pytest.mark.unit

GOOD = {"category": "insight", "content": "Short subject lines win.", "transcript_type": "coaching"}


def line(**overrides) -> bytes:
    return json.dumps(GOOD | overrides).encode()


@pytest.mark.parametrize("raw, why", [
    (b'{"category": "insight", "content": "a\tb"}', "not valid JSON (Invalid control character at column 38)"),
    (b"{not json", "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    (b'{"a": 1', "not valid JSON (Expecting ',' delimiter at column 8)"),
])
def test_a_json_error_says_where_once(raw, why):
    # json's own message for a control character ends in "at": it read "... at at column 38".
    assert parse_jsonl(raw, "messy.jsonl").errors == [f"messy.jsonl:1: {why}"]


def test_each_malformed_line_is_reported_with_line_number():
    dup = str(uuid.uuid4())
    data = b"\n".join([
        line(id=dup),                      # 1 ok
        b"{not json",                      # 2
        line(category="gossip"),           # 3
        line(content="   "),               # 4
        b"[1, 2]",                         # 5
        b'{"category": "insight", "content": "caf\xe9", "transcript_type": "sales"}',  # 6 latin-1
        line(id=dup),                      # 7 duplicate
        line(content="x" * 1_000_001),     # 8 huge
        line(transcript_type="podcast"),   # 9
        b"",                               # 10 blank: ignored
        line(unknown_field=1),             # 11
        line(content="ok \u200bhidden\x07 text"),  # 12 ok, cleaned
    ])
    parsed = parse_jsonl(data, "in.jsonl")
    errors = {int(e.split(":")[1]): e for e in parsed.errors}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert "not valid JSON" in errors[2]
    assert "category" in errors[3]
    assert "content is empty" in errors[4] or "at least 1" in errors[4]
    assert "expected a JSON object" in errors[5]
    assert "not valid UTF-8" in errors[6]
    assert f"duplicate id {dup} (first at line 1)" in errors[7]
    assert "content" in errors[8]
    assert "transcript_type" in errors[9]
    assert "unknown_field" in errors[11]
    assert [e.content for e in parsed.entries] == ["Short subject lines win.", "ok hidden text"]


def test_a_line_over_the_limit_is_rejected_unparsed_and_the_next_line_keeps_its_number():
    import io

    from playbook_sync.ingest import MAX_LINE_BYTES, Parsed, iter_entries, read_lines

    huge = b'{"content": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}'
    data = b"\n".join([line(content="first"), huge, line(content="third")]) + b"\n"
    out = Parsed()
    got = [(number, entry.content) for number, _, entry in iter_entries(read_lines(io.BytesIO(data)), "big.jsonl", out)]
    assert got == [(1, "first"), (3, "third")]
    assert out.errors == [f"big.jsonl:2: line longer than {MAX_LINE_BYTES} bytes; not parsed"]
    assert out.rejected[0][0] == 2 and len(out.rejected[0][1]) == MAX_LINE_BYTES  # the kept part is bounded


def test_rejection_reasons_are_one_printable_line():
    parsed = parse_jsonl(b'{"category": "insight", "content": "x", "transcript_type": "sales", "bad\\u0000\\nkey": 1}', "f.jsonl")
    assert parsed.errors == ["f.jsonl:1: bad\\x00\\nkey: Extra inputs are not permitted"]
