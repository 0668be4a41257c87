"""`playbook-sync ingest-reports`, `search` and `sops stats` as a user runs them: odd files, wrong flags, any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from playbook_sync import db
from playbook_sync.models_reports import PlaybookExecution, PlaybookReport

pytestmark = pytest.mark.integration

BASE = {"customer_id": "c1", "account_id": "a1", "playbook_id": "voc-sprint", "status": "completed"}


def write(path, *lines) -> None:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else json.dumps(line, ensure_ascii=False).encode()) + b"\n"
                             for line in lines))


@pytest.fixture
def cli(settings, tmp_path):
    """The real console entry point in a subprocess, run from an unrelated directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": os.environ["PATH"], "PLAYBOOK_SYNC_ENV_FILE": "/dev/null", "COLUMNS": "300",
           "PLAYBOOK_SYNC_DATABASE_URL": settings.database_url, "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "playbook_sync.cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
def inproc(settings, monkeypatch):
    """The same commands in this process (faster), as test_ingest_cli runs `ingest`: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from playbook_sync.cli import app
    from playbook_sync.config import get_settings

    monkeypatch.setenv("PLAYBOOK_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PLAYBOOK_SYNC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PLAYBOOK_SYNC_ENV_FILE", "/dev/null")

    def run(*args: str):
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
        finally:
            get_settings.cache_clear()
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    return run


def stored(settings) -> dict[str, PlaybookReport]:
    with db.session_scope(settings.database_url) as s:
        found = {r.report_id: r for r in s.scalars(select(PlaybookReport))}
        s.expunge_all()
    return found


def test_ingest_reports_good_bad_duplicate_late_and_unicode(cli, settings, tmp_path):
    path = tmp_path / "reports.jsonl"
    write(path,
          BASE | {"report_id": "r-1", "account_name": "Zoë Ærø GmbH 🚀", "report_generated_at": "2026-11-20T10:00:00Z",
                  "report_data": {"executive_summary": "Résumé:\u200b NPS jumped.", "outcomes_achieved": ["NPS 25 → 40"],
                                  "raci": {"responsible": "CSM"}, "custom": [1, {"x": None}]}},
          BASE | {"report_id": "r-2", "playbook_name": None, "steps_completed": 3, "total_steps": 5, "duration": 3600},
          BASE | {"report_id": "r-3", "status": "done"},
          {"report_id": "r-4", "status": "completed"},
          BASE | {"report_id": "r-5", "steps_completed": 6, "total_steps": 5},
          BASE | {"report_id": "r-6", "started_at": "2026-11-02", "completed_at": "2026-11-01"},
          b"{not json",
          b"[1, 2]",
          BASE | {"report_id": "r-7", "report_data": {"executive_summary": 12}},
          BASE | {"report_id": "r-8", "surprise": True},
          BASE | {"report_id": "r-1", "report_generated_at": "2026-11-21T10:00:00Z", "account_name": "Zoë Ærø GmbH 🚀",
                  "report_data": {"executive_summary": "Updated later in the same file."}})
    first = cli("ingest-reports", str(path))
    assert first.returncode == 1 and "Traceback" not in first.stdout + first.stderr
    out = first.stdout
    assert "2 new reports, 1 updated, 0 kept" in out and "8 rejected" in out
    for needle in ("reports.jsonl:3: status: Input should be 'completed', 'failed' or 'in-progress'",
                   "reports.jsonl:4: customer_id: Field required", "reports.jsonl:5: report: steps_completed (6) is more than total_steps (5)",
                   "completed_at is before started_at", "reports.jsonl:7: not valid JSON",
                   "reports.jsonl:8: expected a JSON object, got list", "executive_summary must be a string",
                   "reports.jsonl:10: surprise: Extra inputs are not permitted", "report_id r-1 also at line 1"):
        assert needle in out, needle
    assert list((settings.data_dir / "rejected").glob("*reports.jsonl.rejected.jsonl"))
    rows = stored(settings)
    assert set(rows) == {"r-1", "r-2"}
    assert rows["r-1"].report_data == {"executive_summary": "Updated later in the same file."}  # the later line won
    assert rows["r-1"].account_name == "Zoë Ærø GmbH 🚀" and rows["r-2"].duration == "3600"
    assert rows["r-1"].embedding_model and rows["r-2"].embedding is not None

    late = tmp_path / "late.jsonl"  # an older copy arriving after the newer one is not applied
    write(late, BASE | {"report_id": "r-1", "report_generated_at": "2026-11-19T10:00:00Z", "account_id": "stale",
                        "execution_data": {"stale": True}, "report_data": {"executive_summary": "Stale copy."}},
          BASE | {"report_id": "r-2", "status": "failed"})
    second = cli("ingest-reports", str(late))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 new reports, 1 updated, 1 kept" in second.stdout and "the stored copy is kept" in second.stdout
    rows = stored(settings)
    assert rows["r-1"].report_data["executive_summary"] == "Updated later in the same file." and rows["r-2"].status == "failed"
    with db.session_scope(settings.database_url) as s:
        executions = list(s.scalars(select(PlaybookExecution)))
        assert len(executions) == 2  # one execution per report, never duplicated
        assert all(e.account_id == "a1" and e.execution_data == {} for e in executions)  # the stale copy changed nothing


def test_search_and_stats_commands_and_their_wrong_flags(inproc, settings, tmp_path):
    cli = inproc
    path = tmp_path / "r.jsonl"
    write(path, BASE | {"report_id": "r-1", "completed_at": datetime.now(UTC).isoformat(),
                        "report_data": {"executive_summary": "Voice of the customer sprint lifted NPS.",
                                        "outcomes_achieved": ["NPS 25 → 40"]}})
    assert cli("ingest-reports", str(path)).returncode == 0
    found = cli("search", "customer voice program raised nps", "--json", "--type", "report")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["link"] == "report:r-1"
    text = cli("search", "nps", "--customer", "c1", "--status", "completed", "--since", "2026-01-01", "--limit", "3")
    assert text.returncode == 0 and "report:r-1" in text.stdout
    for args, message in ((["--type", "video"], "unknown type video"), (["--status", "done"], "unknown status 'done'"),
                          (["--limit", "0"], "limit must be between 1 and 100"), (["--since", "last week"], "is not a date")):
        wrong = cli("search", "nps", *args)
        assert wrong.returncode == 2 and message in wrong.stderr and "Traceback" not in wrong.stderr, (args, wrong.stderr)
    empty = cli("search", " ")
    assert empty.returncode == 2 and "the search query is empty" in empty.stderr
    missing = cli("ingest-reports", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    stats = cli("sops", "stats", "sop-9-9-nothing")
    assert stats.returncode == 1 and "no SOP 'sop-9-9-nothing'" in stats.stderr and "Traceback" not in stats.stderr
    listing = cli("sops", "stats")
    assert listing.returncode == 0 and "no SOP maps a playbook yet" in listing.stdout



def test_a_big_file_is_embedded_in_chunks_not_all_at_once(settings):
    """Every report's vector used to be held at once (a 20k-report file: 1.6 GB resident); now a chunk at a time."""
    import tracemalloc

    from playbook_sync import reports
    from playbook_sync.providers.offline import OfflineEmbedder

    db.upgrade(settings.database_url)
    n = 4 * reports.EMBED_CHUNK
    lines = [json.dumps({**BASE, "report_id": f"big-{i}", "report_data": {"executive_summary": f"reply rates {i}"}}).encode()
             for i in range(n)]
    embedder = OfflineEmbedder()
    with db.session_scope(settings.database_url) as session:
        reports.load(session, None, lines, "big.jsonl")
        tracemalloc.start()
        assert reports.embed_reports(session, embedder) == n
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    all_vectors = n * embedder.dimensions * 24  # a Python float is 24 bytes, before the list that holds it
    assert peak < all_vectors, f"peak {peak / 1e6:.0f} MB while embedding {n} reports"
    with db.session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(PlaybookReport).where(PlaybookReport.embedding.is_not(None))) == n
