"""The opt-in build gate runs the playbook's real Docusaurus build (from the npm registry) before a commit.

The site is the sample playbook plus a package.json pinning Docusaurus; node_modules is installed
once into a cache under the system temp dir, shared by later runs (a first run takes about a
minute more). A callout with a bare `{amount}` is forced past every check of ours (sanitizer,
per-edit hazard check, MDX lint), so only the site's own build can catch it: Docusaurus compiles
it as a JSX expression and fails when rendering the page ("amount is not defined").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from playbook_sync import callouts, demo, edits, pipeline, sitebuild, sop_edits, sops, store
from playbook_sync.deps import Deps
from playbook_sync.models import RunItem
from playbook_sync.providers.localgit import init_repo
from playbook_sync.schemas import CalloutKind, TranscriptType
from tests.integration.test_validate_gate import DISCOVERY, BraceLLM
from tests.support import entry

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = {"name": "sample-playbook", "private": True, "version": "0.0.0", "scripts": {"build": "docusaurus build"},
           "dependencies": {"@docusaurus/core": "3.10.2", "@docusaurus/preset-classic": "3.10.2",
                            "react": "18.3.1", "react-dom": "18.3.1"}}
TEXTS = ["On discovery calls, asking the prospect to rank their three biggest revenue problems by cost made the budget question easy.",
         "LinkedIn connection requests without a note were accepted more often than ones with a pitch in the note."]


@pytest.fixture(scope="session")
def site() -> tuple[dict[str, bytes], Path]:
    """(the sample playbook as a Docusaurus site, the node_modules cache) with Docusaurus installed."""
    files = demo.playbook_files() | {"package.json": json.dumps(PACKAGE, indent=2).encode()}
    cache = Path(tempfile.gettempdir()) / "playbook-sync-docusaurus"
    sitebuild.node_modules(files, cache, timeout=900)
    return files, cache


def test_a_page_the_site_build_fails_on_is_deferred_with_the_build_error(site, settings, monkeypatch):
    files, cache = site
    settings = settings.model_copy(update={"build_gate": True, "build_cache_dir": cache})
    init_repo(settings.playbook_path, files, branch=settings.branch)
    deps = Deps.from_settings(settings)
    deps.llm = BraceLLM()
    # Every check of ours lets `{amount}` through: sanitizer, per-edit hazard check, commit lint.
    monkeypatch.setattr(edits, "mdx_safe", lambda text: text)
    monkeypatch.setattr(sop_edits, "mdx_safe", lambda text: text)
    monkeypatch.setattr(callouts, "mdx_safe", lambda text: text)
    monkeypatch.setattr(edits, "_new_hazards", lambda old, new: None)
    monkeypatch.setattr(sops, "coded_hazards", lambda text: [])  # the one checker's hazard scan
    entries = [entry(t, created_at=datetime.now(UTC), source=f"call-{i}") for i, t in enumerate(TEXTS)]
    with deps.session() as s:
        store.upsert_entries(s, entries=entries)
    head = deps.repo.head()
    outcome = pipeline.run_inline(deps)
    # The rest of the run still lands (the second build, without the page, passed).
    assert outcome["commit_sha"] and outcome["sops_enriched"] and DISCOVERY not in outcome["sops_enriched"]
    assert deps.repo.read_file(DISCOVERY) == deps.repo.read_file(DISCOVERY, head)
    with deps.session() as s:
        item = s.scalar(select(RunItem).where(RunItem.run_id == uuid.UUID(outcome["run_id"]), RunItem.entry_id == entries[0].id))
    assert item.status == "deferred", item.error
    assert f"site build failed for {DISCOVERY}" in item.error and "amount is not defined" in item.error


def test_validate_build_runs_the_site_build_and_names_the_failing_page(site, tmp_path):
    files, cache = site
    broken = files[DISCOVERY].decode().replace("## ", "Budget {amount} first.\n\n## ", 1).encode()
    repo = tmp_path / "site"
    for path, content in (files | {DISCOVERY: broken}).items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_SYNC_")}
    env |= {"PLAYBOOK_SYNC_DATA_DIR": str(tmp_path / "data"), "PLAYBOOK_SYNC_BUILD_CACHE_DIR": str(cache), "COLUMNS": "250"}
    done = subprocess.run([sys.executable, "-m", "playbook_sync.cli", "validate", "--build", "--repo", str(repo)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{DISCOVERY}: the site build fails on this page" in done.stdout
    assert "site build failed: ReferenceError: amount is not defined" in done.stdout
    assert "MDX expression" in done.stdout  # our lint, the fast first line, reports it too
    assert not (repo / "build").exists() and not (repo / ".docusaurus").exists()  # built elsewhere


# The hostile-test finding: text that looks like tags or expressions must reach the page as typed.
FINDING = ("Should we offer a discount on the call when a buyer says <Too expensive> {price} and treats every objection "
           "as a price objection? Some ask for <Retainer/> terms at <3 monthly payments.")
HOSTILE = ("<script>alert('xss')</script><img src=x onerror=alert(1)> {process.env.HOME} [click](javascript:alert(1)) "
           "<Foo prop={x} /> &lt;b&gt;bold&lt;/b&gt; `code {y}` \\{esc\\}")


def test_tags_and_braces_in_callouts_show_literally_in_the_built_site(site, tmp_path):
    """Our sanitized callouts through the real Docusaurus build: the reader sees the text, nothing runs."""
    files, cache = site
    content = files[DISCOVERY].decode()
    doc = sops.parse_sop(DISCOVERY, files[DISCOVERY])
    credit = callouts.attribution([SimpleNamespace(speaker="Zoë <Q> {who}", transcript_type="sales",
                                                   created_at=datetime(2026, 11, 29, tzinfo=UTC))])
    blocks = [callouts.render_block(CalloutKind.question, FINDING, {TranscriptType.sales}, credit),
              callouts.render_block(CalloutKind.info, HOSTILE, {TranscriptType.sales})]
    line = callouts.insertion_line(doc, callouts.choose_section(doc, CalloutKind.question, None))
    page = callouts.insert_blocks(content, [(line, b) for b in blocks])
    root = tmp_path / "site"
    for path, data in (files | {DISCOVERY: page.encode()}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / "node_modules").symlink_to(sitebuild.node_modules(files, cache), target_is_directory=True)
    env = {**os.environ, "DOCUSAURUS_NO_PERSISTENT_CACHE": "1", "CI": "true", "NO_COLOR": "1"}
    done = subprocess.run(["npm", "run", "build"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html = next(h for h in (root / "build").rglob("*.html") if "treats every objection" in h.read_text()).read_text()
    # React writes text nodes HTML-escaped: these are the characters the reader sees.
    for shown in ("&lt;Too expensive&gt; {price}", "&lt;Retainer/&gt; terms at &lt;3 monthly",
                  "Zoë &lt;Q&gt; {who}, sales call, 2026-11-29", "{process.env.HOME}", "&lt;Foo prop={x} /&gt;",
                  "&lt;b&gt;bold&lt;/b&gt;", "`code {y}`", "\\{esc\\}"):
        assert shown in html, (shown, html[html.find("treats every") - 300 : html.find("treats every") + 1500])
    body = html.split("<article", 1)[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in body  # shown as text: no element carries it
    for injected in ("<too", "<retainer", "<q>", "<foo", "<img src=x", "<script>alert", "javascript:",
                     "alert('xss')", "<b>bold"):
        assert injected not in body.lower(), injected
    assert not re.search(r"<[a-z][^>]*\son[a-z]+=", body, re.I)  # no event handler attribute on any element
