"""One SOP checker (issue 10, item 2): a real run and `playbook-sync validate` report a broken SOP in the same words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from playbook_sync import demo, pipeline, store
from playbook_sync.cli import app
from playbook_sync.deps import Deps
from playbook_sync.providers.localgit import init_repo
from tests.integration.test_confine import run_row

pytestmark = pytest.mark.integration

M1 = "docs/sops/module-1/"
BROKEN = {  # one SOP broken in each way a run must leave alone
    f"{M1}sop-1-8-no-frontmatter.md": b"# SOP 1.8\n\nText.\n",
    f"{M1}sop-1-9-bad-yaml.md": b"---\nid: sop-1-9\ntitle: Pricing: the basics\n---\n\nText.\n",
    f"{M1}sop-1-10-no-title.md": b"---\nid: sop-1-10\n---\n\nText.\n",
    f"{M1}sop-1-11-dated.md": b"---\nid: sop-1-11\ntitle: Dated\nreviewed: 2024-13-45\n---\n\nText.\n",
    f"{M1}sop-1-12-unclosed.md": b"---\nid: sop-1-12\ntitle: Unclosed\n---\n\n## Steps\n\n:::tip Open\nNever closed.\n",
}


def test_the_run_log_and_validate_say_the_same_about_each_broken_sop(settings):
    files = demo.playbook_files() | BROKEN
    init_repo(settings.playbook_path, files, branch=settings.branch)
    deps = Deps.from_settings(settings)
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    outcome = pipeline.run_inline(deps)  # an impossible date once failed the run's start outright
    assert outcome["status"] in ("success", "partial") and outcome["commit_sha"], outcome
    assert not set(BROKEN) & set(outcome["sops_enriched"])
    log = (run_row(deps, outcome["run_id"]).error_log or "").splitlines()

    result = CliRunner().invoke(app, ["validate", "--repo", str(settings.playbook_path)], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    said = {path: [line for line in result.output.splitlines() if line.startswith(f"{path}:")] for path in BROKEN}
    for path, lines in said.items():
        assert len(lines) == 1, (path, result.output)
        assert f"{lines[0]}; not edited until fixed" in log, (lines[0], log)  # finalize's words = validate's words
        if not path.endswith("unclosed.md"):  # unreadable: not embedded either, and the start says so alike
            assert f"skipped {lines[0]}" in log, (lines[0], log)
