"""Publishing a playbook makes exactly one commit whose new SOP passes `playbook-sync validate`;
Markdown and PDF export (PDF by headless Chromium's own print)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.test_builder_api import HOSTILE

pytestmark = pytest.mark.integration


def _commits(repo) -> int:
    return int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"], capture_output=True, text=True,
                              check=True).stdout)


def test_publish_makes_one_commit_whose_sop_passes_validate(deps, api, settings):
    pid = api.post("/api/playbooks", json={"title": "Enterprise {SaaS} <Playbook> ✓", "description": HOSTILE,
                                            "target_persona": "CTO"}).json()["id"]
    assert api.post(f"/api/playbooks/{pid}/publish").status_code == 422  # no scenarios yet: nothing to publish
    modules = {"opening_strategy": "import x from 'y'", "key_messages": [HOSTILE, "Lead with the outcome."],
               "objection_handling": [{"objection": HOSTILE, "response": "```\n{x}\n```"},
                                      {"objection": "Too expensive", "response": "Compare with the cost of churn."}]}
    for title in ("Discovery Call with CTO", "Démo für den CTO — 日本語"):
        assert api.post(f"/api/playbooks/{pid}/scenarios", json={"title": title, "content_modules": modules}).status_code == 201
    before = _commits(settings.playbook_path)
    published = api.post(f"/api/playbooks/{pid}/publish")
    assert published.status_code == 200, published.text
    body = published.json()
    assert body["status"] == "published" and body["published_path"].startswith("docs/sops/module-3/sop-3-")
    assert _commits(settings.playbook_path) == before + 1
    message = subprocess.run(["git", "-C", str(settings.playbook_path), "log", "-1", "--format=%B"], capture_output=True,
                             text=True, check=True).stdout
    assert "Created:" in message and body["published_path"] in message and f"Playbook-Builder-Playbook: {pid}" in message
    sop = deps.repo.read_tree("docs")[body["published_path"]].decode()
    assert "### Step 1: Discovery Call with CTO" in sop and "### Step 2: Démo für den CTO — 日本語" in sop
    assert "**Objection:**" in sop and "<script" not in sop and "{" not in sop.split("---", 2)[2]
    env = {"PATH": os.environ["PATH"], "PLAYBOOK_SYNC_ENV_FILE": os.devnull,
           "PLAYBOOK_SYNC_REPO_PATH": str(settings.playbook_path), "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir)}
    checked = subprocess.run([sys.executable, "-m", "playbook_sync.cli", "validate"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert checked.returncode == 0 and ", 0 errors" in checked.stdout, checked.stdout + checked.stderr
    again = api.post(f"/api/playbooks/{pid}/publish")
    assert again.status_code == 422 and "already published" in again.json()["detail"]
    assert _commits(settings.playbook_path) == before + 1


def test_export_markdown_and_pdf(api):
    pid = api.post("/api/playbooks", json={"title": "Export me"}).json()["id"]
    api.post(f"/api/playbooks/{pid}/scenarios", json={"title": "Discovery", "content_modules": {
        "objection_handling": [{"objection": "Price {too} <high>", "response": "Value."}]}})
    markdown = api.get(f"/api/playbooks/{pid}/export.md")
    assert markdown.status_code == 200 and "**Objection:** Price {too} <high>" in markdown.text
    assert 'filename="export-me.md"' in markdown.headers["content-disposition"]
    pdf = api.get(f"/api/playbooks/{pid}/export.pdf", timeout=120)
    assert pdf.status_code == 200, pdf.text
    assert pdf.content.startswith(b"%PDF-") and pdf.headers["content-type"] == "application/pdf"


def test_publish_in_pull_request_mode_opens_the_sync_pull_request(settings, tmp_path):
    from playbook_sync import db, demo
    from playbook_sync.builder import publishing, service
    from playbook_sync.builder.models import PlaybookIn, ScenarioIn
    from playbook_sync.builder.users import local_user_id
    from playbook_sync.providers.github import GitHubRepo
    from playbook_sync.publish import wrap_repo
    from tests.fakes.github_server import FakeGitHub
    from tests.integration.test_pull_requests import BRANCH, TOKEN, git

    db.upgrade(settings.database_url)
    pr_settings = settings.model_copy(update={"publish": "pull_request"})
    with FakeGitHub(tmp_path / "remote.git", token=TOKEN, files=demo.playbook_files()) as gh:
        repo = wrap_repo(GitHubRepo(gh.full_name, TOKEN, base_url=gh.base_url, seconds_between_requests=None,
                                    seconds_between_writes=None), pr_settings)
        main = git(gh.git.path, "rev-parse", "main")
        with db.session_scope(settings.database_url) as s:
            user = local_user_id(s)
            pid = service.create_playbook(s, user, PlaybookIn(title="Reviewed playbook")).id
            service.add_scenario(s, user, pid, ScenarioIn(title="Discovery Call with CTO"))
            row = publishing.publish(s, pr_settings, user, pid, repo=repo)
            path = row.published_path
        assert git(gh.git.path, "rev-parse", "main") == main  # nothing lands on main before review
        assert git(gh.git.path, "rev-list", "--count", f"main..{BRANCH}") == "1"
        assert path in git(gh.git.path, "show", "--stat", "--format=%B", BRANCH)
        assert len(gh.pulls) == 1 and f"Playbook-Builder-Playbook: {pid}" in gh.pulls[0]["body"]


def test_a_publish_whose_commit_landed_but_not_its_database_write_is_adopted(deps, api, settings):
    from sqlalchemy import update

    from playbook_sync.builder.tables import PlaybookRow

    pid = api.post("/api/playbooks", json={"title": "Crash Between Commit And Write"}).json()["id"]
    assert api.post(f"/api/playbooks/{pid}/scenarios", json={"title": "Discovery"}).status_code == 201
    first = api.post(f"/api/playbooks/{pid}/publish").json()
    commits = _commits(settings.playbook_path)
    with deps.session() as s:  # what a crash after repo.commit and before the flush leaves
        s.execute(update(PlaybookRow).where(PlaybookRow.id == pid).values(status="draft", published_sha=None,
                                                                          published_path=None))
    again = api.post(f"/api/playbooks/{pid}/publish")
    assert again.status_code == 200, again.text  # was 422 "already committed ... nothing was changed", every time
    body = again.json()
    assert (body["status"], body["published_path"], body["published_sha"]) == \
        ("published", first["published_path"], first["published_sha"])
    assert _commits(settings.playbook_path) == commits  # adopted, not written twice
