"""Commit under contention: a concurrent push is rebased onto; GitHub 5xx fails the run cleanly."""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import demo, pipeline, store
from playbook_sync.callouts import check_additive
from playbook_sync.deps import Deps
from playbook_sync.models import SyncRun
from playbook_sync.providers.github import GitHubRepo
from playbook_sync.providers.localgit import LocalGitRepo
from tests.fakes.github_server import FakeGitHub

pytestmark = pytest.mark.integration
TOKEN = "github_pat_contention_0123456789"
COLD = "docs/sops/module-2/sop-2-1-write-cold-email-copy.md"
HUMAN_NOTE = b"\nA note a human added while the run was working.\n"


def human_push(repo: LocalGitRepo) -> str:
    """Someone edits an SOP the run is also editing, and adds a file of their own."""
    head = repo.head()
    tree = repo.read_tree("docs", head)
    return repo.commit({COLD: tree[COLD] + HUMAN_NOTE, "docs/human-notes.md": b"---\nid: human\ntitle: Human\n---\n\nhi\n"},
                       "human edit", parent=head)


class RacingRepo(LocalGitRepo):
    """A local repo where someone pushes right before our first commit lands."""

    raced: str | None = None

    def commit(self, files, message, parent):
        if self.raced is None and "Playbook-Sync-Run" in message:
            self.raced = human_push(LocalGitRepo(self.path, self.branch))
        return super().commit(files, message, parent)


def load_sample(deps):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))


def assert_on_top_of_human(repo, sha, human_sha, before):
    parent = subprocess.run(["git", "-C", str(repo.path), "rev-parse", f"{sha}^"], capture_output=True, text=True).stdout.strip()
    assert parent == human_sha
    after = repo.read_tree("docs", sha)
    assert HUMAN_NOTE.strip() in after[COLD] and "docs/human-notes.md" in after
    assert after[COLD] != before[COLD] + HUMAN_NOTE  # our callouts went in as well...
    assert check_additive((before[COLD] + HUMAN_NOTE).decode(), after[COLD].decode()) is None  # ...additively


def test_concurrent_push_is_rebased_onto_local(deps, settings):
    load_sample(deps)
    deps.repo = RacingRepo(settings.playbook_path, settings.branch)
    before = deps.repo.read_tree("docs")
    result = pipeline.run_inline(deps)
    assert result["status"] == "success" and deps.repo.raced
    assert_on_top_of_human(deps.repo, result["commit_sha"], deps.repo.raced, before)


def test_concurrent_push_is_rebased_onto_github(settings, tmp_path):
    with FakeGitHub(tmp_path / "remote.git", token=TOKEN, files=demo.playbook_files()) as gh:
        deps = Deps.from_settings(settings)
        deps.repo = GitHubRepo(gh.full_name, TOKEN, base_url=gh.base_url, seconds_between_requests=None, seconds_between_writes=None)
        load_sample(deps)
        before = gh.git.read_tree("docs")
        pushed = []
        gh.before_next("/git/blobs", lambda *_: pushed.append(human_push(gh.git)), method="POST")
        result = pipeline.run_inline(deps)
        assert result["status"] == "success" and pushed
        assert_on_top_of_human(gh.git, result["commit_sha"], pushed[0], before)


def test_github_5xx_twice_fails_the_run_and_commits_nothing(settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # PyGithub and urllib3 log requests at DEBUG
    with FakeGitHub(tmp_path / "remote.git", token=TOKEN, files=demo.playbook_files()) as gh:
        deps = Deps.from_settings(settings)
        deps.repo = GitHubRepo(gh.full_name, TOKEN, base_url=gh.base_url, seconds_between_requests=None,
                               seconds_between_writes=None, retry_backoff=0.01)
        load_sample(deps)
        head = gh.git.head()
        gh.fail_next("/git/refs/heads/main", status=502, count=2, method="PATCH")
        result = pipeline.run_inline(deps)
        assert result["status"] == "failed" and "502" in result["error"]
        assert gh.git.head() == head  # nothing committed
        with deps.session() as s:
            assert store.last_window_end(s) is None  # the window did not advance
        assert TOKEN not in result["error"]
        again = pipeline.run_inline(deps)  # GitHub is back: the next run does the work
        assert again["status"] == "success" and again["entries"] == result["entries"]
        assert gh.git.head() != head
    with deps.session() as s:
        stored = " ".join(str(r.error_log) + str(r.commit_message) for r in s.scalars(select(SyncRun)))
    assert TOKEN not in caplog.text and TOKEN not in stored and len(caplog.records) > 10
