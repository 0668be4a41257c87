"""The run committing through real PyGithub to a local fake GitHub backed by a bare repo."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from playbook_sync import demo, pipeline, store
from playbook_sync.deps import Deps
from playbook_sync.models import InsertedCallout, SyncRun
from playbook_sync.providers.github import GitHubRepo
from tests.fakes.github_server import FakeGitHub

pytestmark = pytest.mark.integration
TOKEN = "github_pat_fake_0123456789"


def git(bare, *args) -> str:
    return subprocess.run(["git", "-C", str(bare), *args], capture_output=True, text=True, check=True).stdout


def test_one_commit_via_github_and_finalize_again_adds_nothing(settings, tmp_path):
    bare = tmp_path / "remote.git"
    with FakeGitHub(bare, token=TOKEN, files=demo.playbook_files()) as gh:
        repo = GitHubRepo(gh.full_name, TOKEN,
                          base_url=gh.base_url, seconds_between_requests=None, seconds_between_writes=None)
        deps = Deps.from_settings(settings)
        deps.repo = repo
        now = datetime.now(UTC)
        with deps.session() as s:
            store.upsert_entries(s, entries=demo.entries(now))
        with deps.session() as s:
            started = pipeline.start_run(s, deps, now=now)
        for e in started.entry_ids:
            with deps.session() as s:
                pipeline.process_entry(s, deps, run_id=started.run_id, entry_id=e)
        before = int(git(bare, "rev-list", "--count", "main"))
        with deps.session() as s:
            result = pipeline.finalize_run(s, deps, run_id=started.run_id)
        assert int(git(bare, "rev-list", "--count", "main")) == before + 1
        changed = git(bare, "show", "--name-only", "--format=", result["commit_sha"]).split()
        assert len(changed) >= 3 and set(changed) == set(result["sops_enriched"]) | set(result["sops_created"])
        assert f"Playbook-Sync-Run: {started.run_id}" in git(bare, "log", "-1", "--format=%B")
        with deps.session() as s:
            blocks = s.scalar(select(func.count()).select_from(InsertedCallout))
            run = s.get(SyncRun, started.run_id)
            run.status = "running"  # a redelivered callback
        with deps.session() as s:
            again = pipeline.finalize_run(s, deps, run_id=started.run_id)
        assert again["commit_sha"] == result["commit_sha"]
        assert int(git(bare, "rev-list", "--count", "main")) == before + 1
        with deps.session() as s:
            assert s.scalar(select(func.count()).select_from(InsertedCallout)) == blocks
