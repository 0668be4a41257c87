"""Runs on real PostgreSQL and real git that meet a hostile playbook (DESIGN §2.7, issue 9)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from playbook_sync import demo, finalize, pipeline, store
from playbook_sync.deps import Deps
from playbook_sync.models import InsertedCallout, SopEmbedding, SopSection, SyncRun
from playbook_sync.providers.localgit import LocalGitRepo, RepoPathError

pytestmark = pytest.mark.integration

COLD = "docs/sops/module-2/sop-2-1-write-cold-email-copy.md"
IDENTITY = {"GIT_AUTHOR_NAME": "Person", "GIT_AUTHOR_EMAIL": "p@example.com",
            "GIT_COMMITTER_NAME": "Person", "GIT_COMMITTER_EMAIL": "p@example.com"}


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | IDENTITY
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True, env=env).stdout


def sample_entries(deps: Deps) -> None:
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))


def run_row(deps: Deps, run_id: str) -> SyncRun:
    with deps.session() as s:
        run = s.get(SyncRun, uuid.UUID(run_id))
        s.expunge(run)
        return run


def cached_paths(deps: Deps) -> set[str]:
    with deps.session() as s:
        return set(s.scalars(select(SopEmbedding.file_path))) | set(s.scalars(select(SopSection.file_path)))


# -- item 1 ----------------------------------------------------------------------------------------


def test_a_run_on_a_directory_inside_another_repository_refuses_before_opening(settings, tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    git(outer, "init", "-q", "--initial-branch=main")
    (outer / "docs").mkdir()
    (outer / "docs" / "mine.md").write_text('---\nid: mine\ntitle: "Mine"\n---\n\n# Mine\n')
    git(outer, "add", ".")
    git(outer, "commit", "-q", "-m", "my work")
    head = git(outer, "rev-parse", "HEAD")
    (outer / "playbook").mkdir()
    deps = Deps.from_settings(settings.model_copy(update={"repo_path": outer / "playbook"}))
    sample_entries(deps)
    with deps.session() as s, pytest.raises(RepoPathError, match=r"^PLAYBOOK_SYNC_REPO_PATH: .*outer/playbook is not a git"):
        pipeline.start_run(s, deps)
    with deps.session() as s:
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 0  # no run was opened
        assert s.scalar(select(func.count()).select_from(SopEmbedding)) == 0
    assert git(outer, "rev-parse", "HEAD") == head and git(outer, "status", "--porcelain") == ""


def test_the_cli_run_refuses_an_enclosing_repository_in_one_line(tmp_path):
    outer = tmp_path / "outer"
    (outer / "playbook" / "docs").mkdir(parents=True)
    git(outer, "init", "-q", "--initial-branch=main")
    (outer / "notes.md").write_text("mine\n")
    git(outer, "add", "notes.md")
    git(outer, "commit", "-q", "-m", "my work")
    head = git(outer, "rev-parse", "HEAD")
    result = cli(tmp_path, "run", env={"PLAYBOOK_SYNC_DATA_DIR": "data", "PLAYBOOK_SYNC_REPO_PATH": str(outer / "playbook")})
    assert result.returncode == 1, result.stdout + result.stderr
    # Refused before anything starts: the settings check says it in one line, naming the setting.
    said = (result.stdout + result.stderr).strip().splitlines()
    assert len(said) == 1 and f"PLAYBOOK_SYNC_REPO_PATH: {outer / 'playbook'} is not a git repository" in said[0], said
    assert "Traceback" not in result.stdout + result.stderr
    assert git(outer, "rev-parse", "HEAD") == head and git(outer, "status", "--porcelain") == ""


# -- item 13 ---------------------------------------------------------------------------------------


def test_an_sop_named_with_a_tab_is_skipped_and_the_run_goes_on(deps):
    repo = deps.settings.playbook_path
    tabbed = COLD.replace("sop-2-1-", "sop-2-1\t")
    git(repo, "mv", COLD, tabbed)
    git(repo, "commit", "-q", "-m", "a person renamed an SOP with a tab")
    before = git(repo, "rev-parse", f"HEAD:{tabbed}")
    sample_entries(deps)
    first = pipeline.run_inline(deps)
    assert first["status"] in ("success", "partial"), first
    assert first["commit_sha"] is not None and first["enriched"] > 0
    second = pipeline.run_inline(deps)  # the defect failed every run, forever; the skip is reported every run
    assert second["status"] == "success", second
    for outcome in (first, second):
        log = run_row(deps, outcome["run_id"]).error_log or ""
        assert f"skipped {tabbed}:1: file name {tabbed!r} has a control character" in log, log
    assert tabbed not in cached_paths(deps) and COLD not in cached_paths(deps)
    assert git(repo, "rev-parse", f"HEAD:{tabbed}") == before  # the file itself is left alone
    with deps.session() as s:
        assert tabbed not in set(s.scalars(select(InsertedCallout.sop_file_path)))


# -- also: very large SOPs are skipped with a reason ----------------------------------------------


def test_an_sop_over_the_size_limit_is_skipped_with_a_reason(deps):
    repo = deps.settings.playbook_path
    big = (repo / COLD).read_bytes() + b"\n## Appendix\n\n" + b"Cold email subject lines and openers. " * 2000
    (repo / COLD).write_bytes(big)
    git(repo, "commit", "-q", "-am", "a huge SOP")
    deps.settings = deps.settings.model_copy(update={"max_sop_bytes": 50_000})
    assert len(big) > 50_000 > max(len(c) for p, c in demo.playbook_files().items() if p.endswith(".md"))
    sample_entries(deps)
    outcome = pipeline.run_inline(deps)
    assert outcome["status"] in ("success", "partial") and outcome["enriched"] > 0, outcome
    log = run_row(deps, outcome["run_id"]).error_log or ""
    assert f"skipped {COLD}:1: file is {len(big):,} bytes, over PLAYBOOK_SYNC_MAX_SOP_BYTES=50,000" in log, log
    assert COLD not in cached_paths(deps) and len(cached_paths(deps)) == 8  # the other 8 SOPs (the landing page is no SOP)
    assert (repo / COLD).read_bytes() == big and COLD not in outcome["sops_enriched"]


# -- item 11: every command behaves the same from any directory -----------------------------------

ROOT = Path(__file__).resolve().parents[2]


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (no PLAYBOOK_SYNC_* from the test process)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_SYNC_")} | {"COLUMNS": "200"}
    script = Path(sys.executable).parent / "playbook-sync"
    return subprocess.run([str(script), *args], cwd=cwd, env=clean | (env or {}), capture_output=True, text=True,
                          timeout=600)


def test_the_demo_from_another_directory_uses_one_data_dir(tmp_path):
    name = f"data-{uuid.uuid4().hex[:8]}"
    home, elsewhere = tmp_path / "home", tmp_path / "home" / "elsewhere"
    elsewhere.mkdir(parents=True)
    # Relative, and from a .env in the user's directory: the CLI and its worker must agree on both.
    (elsewhere / ".env").write_text(f"PLAYBOOK_SYNC_DATA_DIR=../{name}\n")
    first = cli(elsewhere, "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    data = home / name
    repo = data / "playbook"
    assert f"playbook repository: {repo}" in first.stdout
    assert git(repo, "rev-list", "--count", "main").strip() == "2"
    assert "Playbook-Sync-Run: " in git(repo, "log", "-1", "--format=%B")
    assert (data / "worker.log").stat().st_size > 0 and (data / "pg").is_dir()
    # Nothing was made where the worker's own directory would have put a relative path.
    assert not (ROOT.parent / name).exists() and not (ROOT / name).exists()

    second = cli(home, "demo", env={"PLAYBOOK_SYNC_DATA_DIR": name})  # the same place, named from its parent
    assert second.returncode == 0, second.stdout + second.stderr
    assert "ingested 0 new" in second.stdout and f"playbook repository: {repo}" in second.stdout
    assert int(git(repo, "rev-list", "--count", "main")) >= 2

    # The SOP cache the worker filled is the one in this data dir, for this repository's SOPs.
    from playbook_sync.db import get_engine, session_scope
    from playbook_sync.local_services import start_postgres

    server, url = start_postgres(data)
    try:
        with session_scope(url) as s:
            cached = set(s.scalars(select(SopEmbedding.file_path)))
            runs = s.scalar(select(func.count()).select_from(SyncRun))
    finally:
        get_engine(url).dispose()
        server._cleanup()
    sample = git(repo, "rev-list", "--max-parents=0", "main").strip()
    docs = {p for p in git(repo, "ls-tree", "-r", "--name-only", sample, "docs").split() if p.endswith(".md")}
    sops = docs - {"docs/intro.md"}  # the landing page (slug: /) is read, never cached as an SOP
    assert len(sops) == 9 and sops <= cached and "docs/intro.md" not in cached and runs == 2


# -- item 8: a new SOP never takes the path (number) of a deleted one -------------------------------

GONE = "docs/sops/module-1/sop-1-4-office-plants.md"  # the sample run's new SOP lands in module 1
PLANTS = '---\nid: sop-1-4-office-plants\ntitle: "SOP 1.4: Office Plants"\n---\n\n# Office Plants\n\nWater them on Fridays.\n'


def created_in_module_1(outcome: dict) -> list[str]:
    return [Path(p).name for p in outcome["sops_created"] if "/module-1/" in p]


def test_a_new_sop_skips_the_number_of_an_sop_deleted_before_the_run(deps):
    repo = deps.settings.playbook_path
    (repo / GONE).write_text(PLANTS)
    git(repo, "add", GONE)
    git(repo, "commit", "-q", "-m", "SOP 1.4")
    git(repo, "rm", "-q", GONE)
    git(repo, "commit", "-q", "-m", "SOP 1.4 was a mistake")
    sample_entries(deps)
    outcome = pipeline.run_inline(deps)
    names = created_in_module_1(outcome)
    assert names and names[0].startswith("sop-1-5-"), outcome["sops_created"]
    assert not any(n.startswith("sop-1-4-") for n in names)


class NoHistory(LocalGitRepo):
    """A repository whose history is too costly to read (as on GitHub): no paths_ever."""

    paths_ever = None  # the protocol idiom for "not supported": not a providers.base.PathHistory


def test_without_history_a_new_sop_skips_a_number_deleted_during_the_run(deps):
    repo = deps.settings.playbook_path
    (repo / GONE).write_text(PLANTS)
    git(repo, "add", GONE)
    git(repo, "commit", "-q", "-m", "SOP 1.4")
    deps.repo = NoHistory(repo)
    sample_entries(deps)
    with deps.session() as s:
        started = pipeline.start_run(s, deps)
    for entry_id in started.entry_ids:
        with deps.session() as s:
            pipeline.process_entry(s, deps, run_id=started.run_id, entry_id=entry_id)
    git(repo, "rm", "-q", GONE)  # a person deletes it while the run is working
    git(repo, "commit", "-q", "-m", "SOP 1.4 was a mistake")
    outcome = finalize.finalize_or_fail(deps, run_id=started.run_id)
    names = created_in_module_1(outcome)
    assert names and names[0].startswith("sop-1-5-"), outcome
