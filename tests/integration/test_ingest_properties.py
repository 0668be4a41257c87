"""Property-based ingest over the entry schema, stored in the real PostgreSQL (issue 9, item 4).

A file is a random interleaving of valid lines (every optional field absent, null or
present; hostile unicode, NULs and control characters in every string field and in tags;
naive, aware, ancient and future dates) and invalid ones. Whatever the mix, every valid
line is stored with every field equal to what was given after the documented cleaning, and
every invalid line is reported with its number and kept. The expected values come from the
cleaning rule as documented in ingest.py, written out again here, not from its code.
"""

from __future__ import annotations

import io
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from playbook_sync import db
from playbook_sync.ingest import load, read_lines
from playbook_sync.models import KnowledgeEntry

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)  # the clock the warnings are judged against
CATEGORIES = ["insight", "question", "product_intel", "outcome"]
TYPES = ["coaching", "sales", "report"]

# What the documented cleaning removes: C0 controls but tab/LF/CR, DEL, and the invisible
# format characters (zero-width, bidi embeddings/overrides/isolates, word joiner, BOM).
REMOVED = {chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]}
REMOVED |= {chr(c) for c in [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x206A), 0xFEFF]}
HOSTILE = [
    "\x00", "\x07", "\x1b", "\x7f", "\t", "\n", "\r", "\u200b", "\u200d", "\u202e", "\u2066", "\ufeff", "\u2028", "\x85",
    "\u00a0", "e\u0301", "\u0651", "\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\U0001f600",
    "\U0001d518", "\U00020000", "\\", '"', "{", "}", "[/red]", "<b>", " ",
]


def expected_text(text: str) -> str:
    return unicodedata.normalize("NFC", "".join(c for c in text if c not in REMOVED)).strip()


chars = st.one_of(st.characters(codec="utf-8"), st.sampled_from(HOSTILE))
texts = st.lists(chars, max_size=30).map("".join)
# Content stays non-blank after cleaning: one letter somewhere among the hostile ones.
contents = st.tuples(texts, st.sampled_from("aZ\u00e9\u05d0\U0001f600"), texts).map("".join)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
plain_dates = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9999, 12, 1))  # a day clear of the limits, any offset
near_now = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1))
dates = st.one_of(
    st.tuples(st.one_of(plain_dates, near_now), st.none() | offsets).map(lambda p: p[0].replace(tzinfo=p[1])),
    st.just(NOW + timedelta(days=1, minutes=1)), st.just(NOW + timedelta(hours=23)), st.just(datetime(1999, 12, 31, 23, 59)),
)
OVERFLOWING = ["0001-01-01T00:00+14:00", "9999-12-31T23:59-14:00", "0001-01-01T00:00:00"]


@dataclass
class Line:
    raw: bytes
    valid: bool
    given: dict | None = None  # the valid line's object, for the expected row
    warns: bool = False


def _optional(draw, obj: dict, key: str, values) -> None:
    choice = draw(st.sampled_from(["absent", "null", "value"]))
    if choice == "null":
        obj[key] = None
    elif choice == "value":
        obj[key] = draw(values)


@st.composite
def valid_objects(draw) -> dict:
    obj = {"category": draw(st.sampled_from(CATEGORIES)), "content": draw(contents),
           "transcript_type": draw(st.sampled_from(TYPES))}
    _optional(draw, obj, "id", st.uuids().map(str))
    _optional(draw, obj, "context", texts)
    _optional(draw, obj, "speaker", texts)
    _optional(draw, obj, "tags", st.lists(texts, max_size=4))
    _optional(draw, obj, "source_ref", texts)
    _optional(draw, obj, "created_at", dates)
    items = list(obj.items())
    return dict(draw(st.permutations(items)))  # key order must not matter either


def encode(obj: dict, ascii_only: bool) -> bytes:
    value = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in obj.items()}
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")


@st.composite
def invalid_lines(draw, good: dict) -> bytes:
    kind = draw(st.sampled_from(["json", "array", "missing", "category", "blank", "unknown", "latin1", "date",
                                 "surrogate", "speaker", "nul-category", "tags"]))
    bad = dict(good)
    bad.pop("id", None)
    if kind == "json":
        return b'{"category": "insight", ' + json.dumps(draw(texts))[1:-1].encode() + b",,"
    if kind == "array":
        return json.dumps([good.get("content"), 1]).encode()
    if kind == "missing":
        bad.pop(draw(st.sampled_from(["category", "content", "transcript_type"])))
    elif kind == "category":
        bad["category"] = "gossip"
    elif kind == "blank":
        bad["content"] = draw(st.lists(st.sampled_from(["\x00", "\u200b", " ", "\t", "\x07", "\ufeff"]), max_size=5).map("".join))
    elif kind == "unknown":
        bad[draw(st.sampled_from(["notes", "Content", "[bold]x", "tag\x00s"]))] = "x"
    elif kind == "latin1":
        return b'{"category": "insight", "content": "caf\xe9", "transcript_type": "sales"}'
    elif kind == "date":
        bad["created_at"] = draw(st.sampled_from(OVERFLOWING[:2]))
    elif kind == "surrogate":
        bad[draw(st.sampled_from(["content", "context", "speaker", "source_ref"]))] = "ok \ud800 here"
        return json.dumps(bad, ensure_ascii=True, default=str).encode()
    elif kind == "speaker":
        bad["speaker"] = "s" * 201
    elif kind == "nul-category":
        bad["category"] = "insight\x00"
    elif kind == "tags":
        bad["tags"] = draw(st.sampled_from(["a,b", 5, [1, 2], {"x": 1}]))
    return encode(bad, ascii_only=True)


@st.composite
def files(draw) -> tuple[bytes, list[Line]]:
    lines: list[Line] = []
    seen_ids: list[bytes] = []
    used: set[str] = set()
    for _ in range(draw(st.integers(1, 12))):
        roll = draw(st.integers(0, 9))
        good = draw(valid_objects())
        if roll < 6 and good.get("id") and good["id"] in used:  # hypothesis repeats values: a second use is a duplicate
            lines.append(Line(encode(good, ascii_only=True), False))
        elif roll < 6:
            used.add(good.get("id"))
            raw = encode(good, ascii_only=draw(st.booleans()))
            created = good.get("created_at")
            if created is not None and created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            warns = created is not None and (created > NOW + timedelta(days=1) or created < datetime(2000, 1, 1, tzinfo=UTC))
            lines.append(Line(raw, True, good, warns))
            if good.get("id"):
                seen_ids.append(raw)
        elif roll < 8:
            lines.append(Line(draw(invalid_lines(good)), False))
        elif roll == 8 and seen_ids:
            lines.append(Line(draw(st.sampled_from(seen_ids)), False))  # a duplicate id within the file
        else:
            lines.append(Line(draw(st.sampled_from([b"", b"   ", b"\t"])), True))  # blank: skipped, still numbered
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + newline.join(line.raw for line in lines)
    return data + (newline if draw(st.booleans()) else b""), lines


def expected_row(obj: dict) -> tuple:
    created = obj.get("created_at")
    if created is not None:
        created = (created if created.tzinfo else created.replace(tzinfo=UTC)).astimezone(UTC)
    optional = lambda key: expected_text(obj[key]) if obj.get(key) is not None else None
    tags = tuple(t for t in (expected_text(t) for t in obj.get("tags") or []) if t)
    return (obj.get("id"), obj["category"], expected_text(obj["content"]), optional("context"), optional("speaker"),
            obj["transcript_type"], tags, optional("source_ref"), created or "received")


def stored_row(row: KnowledgeEntry, given_ids: set[str]) -> tuple:
    created = "received" if row.created_at == row.received_at else row.created_at.astimezone(UTC)
    return (str(row.id) if str(row.id) in given_ids else None, row.category, row.content, row.context, row.speaker,
            row.transcript_type, tuple(row.tags), row.source_ref, created)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=files())
def test_every_valid_line_is_stored_whole_and_every_invalid_line_is_named(database_url, case):
    data, lines = case
    with db.session_scope(database_url) as s:
        s.execute(delete(KnowledgeEntry))  # hypothesis reuses ids across examples
    with db.session_scope(database_url) as s:
        loaded = load(s, read_lines(io.BytesIO(data)), "in.jsonl", chunk=3, now=NOW)  # small chunks: several INSERTs
    parsed = loaded.parsed

    numbered = list(enumerate(lines, start=1))
    bad = {n for n, line in numbered if not line.valid}
    assert [int(e.split(":")[1]) for e in parsed.errors] == sorted(bad), parsed.errors
    assert all(e.startswith(f"in.jsonl:{n}: ") and len(e) > len(f"in.jsonl:{n}: ") for e, n in zip(parsed.errors, sorted(bad)))
    assert all("\n" not in e and "\x00" not in e for e in parsed.errors)  # one printable line each
    assert parsed.rejected == [(n, line.raw) for n, line in numbered if not line.valid]  # kept, byte for byte
    assert [int(w.split(":")[1]) for w in parsed.warnings] == [n for n, line in numbered if line.valid and line.warns]
    assert all(": warning: created_at " in w for w in parsed.warnings)

    good = [line.given for line in lines if line.valid and line.given is not None]
    given_ids = {g["id"] for g in good if g.get("id")}
    with db.session_scope(database_url) as s:
        rows = list(s.scalars(select(KnowledgeEntry)))
        stored = Counter(stored_row(r, given_ids) for r in rows)
    assert stored == Counter(expected_row(g) for g in good)
    assert loaded.added == len(good) and loaded.present == 0
