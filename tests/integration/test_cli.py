"""The CLI as a user runs it: the demo twice on a fresh data dir, and ingest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from playbook_sync import db
from playbook_sync.cli import app
from playbook_sync.config import get_settings
from playbook_sync.models import KnowledgeEntry

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def demo(data_dir: Path) -> subprocess.CompletedProcess:
    # A user's environment: none of the test's settings (the suite's "no dotenv file" switch stays).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_SYNC_") or k == "PLAYBOOK_SYNC_ENV_FILE"}
    env |= {"PLAYBOOK_SYNC_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "playbook_sync.cli", "demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def counts(stdout: str) -> dict[str, int]:
    """The run summary table's row, by column name (not any cell that happens to read 0)."""
    rows = [[cell.strip() for cell in line.strip().strip("│┃").split("│" if "│" in line else "┃")]
            for line in stdout.splitlines() if line.count("│") >= 5 or line.count("┃") >= 5]
    header = next(r for r in rows if "entries" in r)
    values = next(r for r in rows if all(c.isdigit() for c in r))
    return dict(zip(header, map(int, values), strict=True))


def commits(repo: Path) -> int:
    return int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "main"], capture_output=True, text=True).stdout)


def test_demo_commits_once_then_processes_nothing_twice(tmp_path):
    first = demo(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    repo = tmp_path / "playbook"
    assert commits(repo) == 2 and "commit: " in first.stdout and "created  docs/sops/" in first.stdout
    log = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%B"], capture_output=True, text=True).stdout
    assert "Playbook-Sync-Run: " in log
    second = demo(tmp_path)  # processes only what the first run deferred (per-SOP cap)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "ingested 0 new" in second.stdout
    taken = counts(second.stdout)
    assert taken["entries"] == counts(first.stdout)["deferred"] > 0 and taken["enriched"] > 0
    assert commits(repo) == 3 and re.search(r"^commit: [0-9a-f]{40}$", second.stdout, re.M)  # the deferred, in one commit
    third = demo(tmp_path)
    assert third.returncode == 0 and "nothing to change" in third.stdout
    assert counts(third.stdout) == dict.fromkeys(("entries", "enriched", "redundant", "orphaned", "deferred", "held", "failed"), 0)
    assert commits(repo) == 3  # nothing left to do: no commit


def test_ingest_rejects_bad_lines_with_line_numbers(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYBOOK_SYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PLAYBOOK_SYNC_BROKER_URL", settings.broker_url or "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLAYBOOK_SYNC_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    good = {"category": "question", "content": "How long should a proposal be?", "transcript_type": "sales"}
    path = tmp_path / "entries.jsonl"
    path.write_text("\n".join([json.dumps(good), "{oops", json.dumps(good | {"category": "rumour"})]) + "\n")
    try:
        result = CliRunner().invoke(app, ["ingest", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert f"{path}:2: not valid JSON" in result.output and f"{path}:3: category" in result.output
    assert "1 new entries" in result.output
    kept = list((settings.data_dir / "rejected").glob("*.rejected.jsonl"))
    assert len(kept) == 1
    rows = [json.loads(line) for line in kept[0].read_text().splitlines()]
    assert [r["line"] for r in rows] == [2, 3] and rows[0]["raw"] == "{oops"
    with db.session_scope(settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(KnowledgeEntry)) == 1
