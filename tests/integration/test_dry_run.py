"""`run --dry-run` on the demo data: a diff, nothing kept, and a real run that does exactly that."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from playbook_sync import demo, store
from playbook_sync.cli import app as cli_app
from playbook_sync.config import get_settings
from playbook_sync.models import (
    InsertedCallout,
    KnowledgeEntry,
    OrphanCluster,
    RunItem,
    SopEmbedding,
    SyncRun,
)
from playbook_sync.report import diff_text
from playbook_sync.worker.app import app
from playbook_sync.worker.local import start_and_wait, worker_process
from tests.integration.test_worker import worker_env

pytestmark = pytest.mark.integration


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def state(deps) -> dict:
    """Everything a run could leave behind in the database."""
    with deps.session() as s:
        counts = {m.__name__: s.scalar(select(func.count()).select_from(m))
                  for m in (SyncRun, RunItem, InsertedCallout, OrphanCluster, SopEmbedding)}
        counts["embedded entries"] = s.scalar(select(func.count()).select_from(KnowledgeEntry).where(KnowledgeEntry.embedding.is_not(None)))
        counts["window"] = store.last_window_end(s)
    return counts


def test_dry_run_shows_the_diff_keeps_nothing_and_a_real_run_matches_it(deps, settings, redis_url, monkeypatch, tmp_path):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    head = deps.repo.head()
    before = state(deps)
    for key, value in worker_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["run", "--dry-run"], env={"COLUMNS": "250"})
        dry_id = re.search(r"run ([0-9a-f-]{36})", result.output).group(1)
        # Its run row is gone, so `report` serves the files the dry run wrote.
        rebuilt = CliRunner().invoke(cli_app, ["report", dry_id[:8], "--html", str(tmp_path / "dry.html")])
    finally:
        get_settings.cache_clear()
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Dry run" in (tmp_path / "dry.html").read_text()
    assert result.exit_code == 0, result.output
    shown = set(re.findall(r"^\+\+\+ b/(\S+)$", result.output, re.MULTILINE))
    assert len(shown) >= 3 and "+:::tip From the Field" in result.output
    assert "nothing was committed" in result.output

    # Nothing kept: same head, no run row, window and caches untouched.
    assert deps.repo.head() == head
    assert state(deps) == before and before["SyncRun"] == 0 and before["window"] is None

    # The dry run wrote its report (JSON + HTML) although its run row is gone.
    reports = list(settings.report_path.glob("run-*.json"))
    assert [r.name for r in reports] == [f"run-{dry_id}.json"] and reports[0].with_suffix(".html").exists()
    stored = json.loads(reports[0].read_text())
    assert stored["run"]["dry_run"] is True and {s["path"] for s in stored["sops"]} == shown

    # A real run on a real worker makes exactly the changes the dry run showed.
    with worker_process(app, env=worker_env(settings), log_file=tmp_path / "worker.log"):
        outcome = start_and_wait(settings.database_url, timeout=300)
    assert outcome["status"] == "success", (tmp_path / "worker.log").read_text()[-2000:]
    sha = outcome["commit_sha"]
    changed = set(git(settings.playbook_path, "diff", "--name-only", head, sha).split())
    assert changed and changed == shown  # (an empty diff would make the loop below check nothing)
    for path in changed:
        old = git(settings.playbook_path, "show", f"{head}:{path}") if path in git(settings.playbook_path, "ls-tree", "-r", "--name-only", head) else None
        new = git(settings.playbook_path, "show", f"{sha}:{path}")
        assert diff_text(path, old, new) in result.output, path
