"""`playbook-sync ingest` as a user runs it on the files of issue 9, item 4 (and item 3's dates)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from playbook_sync import db
from playbook_sync.cli import app
from playbook_sync.config import get_settings
from playbook_sync.models import KnowledgeEntry

pytestmark = pytest.mark.integration
BASE = {"category": "insight", "transcript_type": "sales"}


@pytest.fixture
def ingest(settings, monkeypatch):
    monkeypatch.setenv("PLAYBOOK_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PLAYBOOK_SYNC_BROKER_URL", settings.broker_url or "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLAYBOOK_SYNC_DATA_DIR", str(settings.data_dir))

    def run(path) -> Result:
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(app, ["ingest", str(path)], env={"COLUMNS": "300"})
        finally:
            get_settings.cache_clear()
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    return run


def rows(settings) -> dict[str, KnowledgeEntry]:
    with db.session_scope(settings.database_url) as s:
        found = list(s.scalars(select(KnowledgeEntry)))
        s.expunge_all()
    return {r.content: r for r in found}


def write(path, *lines: dict | bytes, newline: bytes = b"\n") -> None:
    path.write_bytes(newline.join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines) + newline)


@pytest.mark.parametrize("rich_first", [False, True], ids=["context-absent-first", "context-present-first"])
def test_lines_with_different_optional_fields_load_every_field(ingest, settings, tmp_path, rich_first):
    plain = BASE | {"content": "Plain line without optional fields."}
    full = BASE | {"content": "Line with every field.", "context": "Discovery call", "speaker": "Dana",
                   "source_ref": "call-42", "created_at": "2026-11-03T10:00:00+02:00", "tags": ["pricing"]}
    path = tmp_path / "mixed.jsonl"
    write(path, *([full, plain] if rich_first else [plain, full]))
    result = ingest(path)
    assert result.exit_code == 0, result.output
    assert "2 new entries, 0 already present, 0 rejected" in result.output
    stored = rows(settings)
    row = stored["Line with every field."]
    assert (row.context, row.speaker, row.source_ref, row.tags) == ("Discovery call", "Dana", "call-42", ["pricing"])
    assert row.created_at == datetime(2026, 11, 3, 8, tzinfo=UTC)
    other = stored["Plain line without optional fields."]
    assert (other.context, other.speaker, other.source_ref, other.tags) == (None, None, None, [])


def test_nul_in_a_tag_is_cleaned_and_no_line_is_lost(ingest, settings, tmp_path):
    path = tmp_path / "nul.jsonl"
    write(path, BASE | {"content": "First.", "tags": ["cold\u0000email", "\u0000"]}, BASE | {"content": "Second.",
          "source_ref": "ref\u0000-1"})
    result = ingest(path)
    assert result.exit_code == 0 and "2 new entries" in result.output, result.output
    stored = rows(settings)
    assert stored["First."].tags == ["coldemail"] and stored["Second."].source_ref == "ref-1"


def test_missing_file_or_directory_is_one_line(ingest, tmp_path):
    for path, reason in [(tmp_path / "missing.jsonl", "no such file"), (tmp_path, "is a directory")]:
        result = ingest(path)
        assert result.exit_code == 1
        assert result.output.strip() == f"error: cannot read {path}: {reason}"


def test_bom_and_crlf_load_and_bad_lines_are_named_and_kept(ingest, settings, tmp_path):
    path = tmp_path / "windows.jsonl"
    write(path, b"\xef\xbb\xbf" + json.dumps(BASE | {"content": "Exported from Excel."}).encode(),
          b"{broken", BASE | {"content": "Second line.", "context": "CRLF"}, newline=b"\r\n")
    result = ingest(path)
    assert result.exit_code == 1
    assert f"rejected {path}:2: not valid JSON" in result.output
    assert "2 new entries, 0 already present, 1 rejected" in result.output
    assert rows(settings)["Second line."].context == "CRLF"
    kept = list((settings.data_dir / "rejected").glob("*.rejected.jsonl"))
    assert [json.loads(line)["raw"] for line in kept[0].read_text().splitlines()] == ["{broken"]


def test_dates_warn_or_reject_at_ingest(ingest, settings, tmp_path):
    future = (datetime.now(UTC) + timedelta(days=40)).replace(microsecond=0)
    path = tmp_path / "dates.jsonl"
    write(path,
          BASE | {"content": "Naive date.", "created_at": "2026-11-05T09:30:00"},
          BASE | {"content": "Future date.", "created_at": future.isoformat()},
          BASE | {"content": "Ancient date.", "created_at": "1970-01-01T00:00:00Z"},
          BASE | {"content": "Year zero in UTC.", "created_at": "0001-01-01T00:00+14:00"})
    result = ingest(path)
    assert result.exit_code == 1
    assert f"{path}:2: warning: created_at {future.isoformat()} is more than a day in the future" in result.output
    assert f"{path}:3: warning: created_at 1970-01-01T00:00:00+00:00 is before 2000" in result.output
    assert f"rejected {path}:4: created_at: " in result.output and "outside the years 1-9999" in result.output
    assert "3 new entries, 0 already present, 1 rejected, 2 warnings" in result.output
    stored = rows(settings)
    assert "Year zero in UTC." not in stored  # it would break `enqueue entries` when read back
    assert stored["Naive date."].created_at == datetime(2026, 11, 5, 9, 30, tzinfo=UTC)  # naive = UTC
    assert stored["Future date."].created_at == future and stored["Ancient date."].created_at.year == 1970


def test_reingesting_an_id_with_other_content_keeps_the_stored_entry_and_says_so(ingest, settings, tmp_path):
    same, changed = str(uuid.uuid4()), str(uuid.uuid4())
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write(first, BASE | {"id": same, "content": "Stays."}, BASE | {"id": changed, "content": "Original text.", "tags": ["a"]})
    assert "2 new entries" in ingest(first).output
    write(second, BASE | {"id": same, "content": "Stays."}, BASE | {"id": changed, "content": "Edited text.", "tags": ["b"]})
    result = ingest(second)
    assert result.exit_code == 0, result.output
    assert "0 new entries, 2 already present, 0 rejected, 1 warnings" in result.output
    assert (f"{second}:2: warning: id {changed} is already stored with a different content, tags; "
            "the stored entry is kept") in result.output
    assert set(rows(settings)) == {"Stays.", "Original text."}


def test_a_100k_line_file_loads_in_chunks(ingest, settings, tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("wb") as out:
        for i in range(100_000):
            line = BASE | {"content": f"Entry number {i} about cold email subject lines."}
            if i % 3 == 0:
                line |= {"context": f"call {i}", "tags": ["bulk"], "created_at": "2026-11-01T00:00:00Z"}
            out.write((json.dumps(line) if i != 50_000 else "{not json").encode() + b"\n")
    result = ingest(path)
    assert result.exit_code == 1
    assert f"rejected {path}:50001: not valid JSON" in result.output
    assert "99999 new entries, 0 already present, 1 rejected" in result.output
    with db.session_scope(settings.database_url) as s:
        with_context = s.scalar(select(func.count()).select_from(KnowledgeEntry).where(KnowledgeEntry.context.is_not(None)))
    assert with_context == 33_334  # lines 0, 3, 6, ... 99999 (the rejected line 50000 is not one)


def test_markup_in_a_bad_line_is_printed_as_text(ingest, tmp_path):
    path = tmp_path / "markup.jsonl"
    write(path, BASE | {"content": "ok", "[/red]note": "x"})
    result = ingest(path)
    assert result.exit_code == 1
    assert f"rejected {path}:1: [/red]note: Extra inputs are not permitted" in result.output
