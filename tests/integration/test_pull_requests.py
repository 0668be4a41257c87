"""Pull request mode through real PyGithub against the fake GitHub server, and the deploy webhook."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from playbook_sync import demo, pipeline, store
from playbook_sync.deps import Deps
from playbook_sync.models import SyncRun
from playbook_sync.providers.github import GitHubRepo
from playbook_sync.publish import PullRequestRepo, wrap_repo
from tests.fakes.github_server import FakeGitHub
from tests.support import entry

pytestmark = pytest.mark.integration
TOKEN = "github_pat_fake_0123456789"
BRANCH = "playbook-sync/updates"


class Hooks:
    """A local deploy-hook receiver that records every POST body."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deploy?token=s3cret"


def git(bare, *args) -> str:
    return subprocess.run(["git", "-C", str(bare), *args], capture_output=True, text=True, check=True).stdout.strip()


def pr_deps(settings, gh: FakeGitHub, webhook: str | None) -> Deps:
    s = settings.model_copy(update={"publish": "pull_request", "deploy_webhook_url": SecretStr(webhook) if webhook else None})
    base = Deps.from_settings(settings)
    repo = GitHubRepo(gh.full_name, TOKEN, base_url=gh.base_url, seconds_between_requests=None, seconds_between_writes=None)
    return Deps(s, base.embedder, base.llm, wrap_repo(repo, s))


# Fresh insights the offline classifier puts into four different SOPs (each enriches).
FRESH = [
    "On discovery calls, asking the prospect to rank their three biggest revenue problems by cost made the budget question easy.",
    "Proposals sent within two hours of the discovery call closed noticeably faster than ones sent the next day.",
    "LinkedIn connection requests without a note were accepted more often than ones with a pitch in the note.",
    "Follow-up emails that added a new case study each time got more replies than plain bump emails.",
]


def fresh(now: datetime):
    return [entry(text, created_at=now, source=f"call-fresh-{i}") for i, text in enumerate(FRESH)]


def test_first_run_opens_a_pull_request_the_next_adds_to_it(settings, tmp_path, caplog):
    hooks = Hooks()
    with FakeGitHub(tmp_path / "remote.git", token=TOKEN, files=demo.playbook_files()) as gh:
        deps = pr_deps(settings, gh, hooks.url)
        assert isinstance(deps.repo, PullRequestRepo)
        main = git(gh.git.path, "rev-parse", "main")
        with deps.session() as s:
            store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))

        first = pipeline.run_inline(deps, trigger="manual")
        assert first["status"] == "success" and first["commit_sha"] and first["deferred"] >= 1
        assert len(gh.pulls) == 1 and gh.count("POST", "/pulls") == 1
        pull = gh.pulls[0]
        assert (pull["head"], pull["base"], pull["state"]) == (BRANCH, "main", "open")
        assert f"Playbook-Sync-Run: {first['run_id']}" in pull["body"] and "Enriched:" in pull["body"]
        assert first["pull_request_url"].endswith("/pull/1")
        assert git(gh.git.path, "rev-parse", "main") == main  # reviewed, not pushed
        assert git(gh.git.path, "rev-parse", BRANCH) == first["commit_sha"]
        assert git(gh.git.path, "rev-parse", f"{first['commit_sha']}^") == main

        # The next run (it owes the entries the per-SOP cap deferred) adds to the same branch and pull request.
        deps = pr_deps(settings, gh, "http://127.0.0.1:9/unreachable")  # a dead deploy hook never fails a run
        second = pipeline.run_inline(deps, trigger="manual")
        assert second["status"] == "success" and second["commit_sha"], second
        assert git(gh.git.path, "rev-parse", f"{second['commit_sha']}^") == first["commit_sha"]
        assert git(gh.git.path, "rev-parse", BRANCH) == second["commit_sha"]
        assert len(gh.pulls) == 1 and gh.count("POST", "/pulls") == 1 and gh.count("PATCH", "/pulls/1") == 1
        body = gh.pulls[0]["body"]
        assert body.index(f"Playbook-Sync-Run: {first['run_id']}") < body.index(f"Playbook-Sync-Run: {second['run_id']}")
        assert second["pull_request_url"] == first["pull_request_url"]
        assert git(gh.git.path, "rev-parse", "main") == main
        assert "deploy webhook to 127.0.0.1 failed" in caplog.text and "s3cret" not in caplog.text

        # Merged and closed: the next run starts the branch again from main and opens a new pull request.
        gh.close_pull(1, merge=True)
        merged = git(gh.git.path, "rev-parse", "main")
        with deps.session() as s:
            store.upsert_entries(s, entries=fresh(datetime.now(UTC)))
        third = pipeline.run_inline(deps, trigger="manual")
        assert third["commit_sha"], third
        assert git(gh.git.path, "rev-parse", f"{third['commit_sha']}^") == merged
        assert len(gh.pulls) == 2 and gh.pulls[1]["state"] == "open" and third["pull_request_url"].endswith("/pull/2")
        with deps.session() as s:
            assert s.get(SyncRun, uuid.UUID(third["run_id"])).pull_request_url == third["pull_request_url"]

    # Only the first run's hook was reachable: one POST, with the run, the commit and the pull request.
    assert [(h["run_id"], h["commit_sha"], h["branch"], h["pull_request_url"]) for h in hooks.received] == [
        (first["run_id"], first["commit_sha"], BRANCH, first["pull_request_url"])]
    hooks.server.shutdown()


def test_pull_request_mode_needs_github(settings):
    with pytest.raises(ValueError, match="needs a GitHub playbook"):
        Deps.from_settings(settings.model_copy(update={"publish": "pull_request"}))
