"""The CLI on the embedded profile as a user drives it: every verb in sequence, and exit codes that say
what happened (the kills are in test_cli_kills.py)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from playbook_sync import demo, pipeline, store
from playbook_sync.cli import app as cli_app
from playbook_sync.config import get_settings
from playbook_sync.models import RunItem, SyncRun
from playbook_sync.worker.app import app
from playbook_sync.worker.local import worker_process
from tests.clis import (
    ENTRIES,
    cli,
    leftovers,
    sample_playbook,
)
from tests.support import FAIL_IDS_ENV, SLOW_ENV

pytestmark = pytest.mark.integration


# -- every verb of the README's Commands section, in sequence ------------------------------------


def test_every_readme_command_on_the_embedded_profile(data, tmp_path):
    sample_playbook(data)

    def ok(*args: str, code: int = 0) -> str:
        done = cli(data, *args)
        assert done.returncode == code, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    assert "database upgraded" in ok("db", "upgrade")
    assert "32 new entries" in ok("ingest", str(ENTRIES))
    first = ok("run")
    assert "— success" in first and "commit: " in first and "created  docs/sops/" in first
    run_id = re.search(r"run ([0-9a-f-]{36}) — success", first).group(1)
    assert "dry run" in ok("run", "--dry-run")
    assert re.search(r"\d+ docs checked, 0 errors", ok("validate"))
    listed = ok("runs")
    assert run_id[:8] in listed and "success" in listed
    assert f"run {run_id}" in ok("runs", "show", run_id[:8])
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    assert f"wrote {js}" in ok("report", run_id[:8], "--html", str(html), "--json", str(js))
    assert run_id in html.read_text() and run_id in js.read_text()
    entry_id = next(iter(ENTRIES.read_text().splitlines())).split('"id": "')[1][:36]
    assert "1 entries" in ok("enqueue", "entries", entry_id)
    assert re.search(r"\d+ entries; this run", ok("enqueue", "window", "--since", "2026-11-14", "--until", "2026-11-16"))
    again = ok("enqueue", "run", run_id[:8])  # item 12: failed with "Retry limit exceeded" on the second services block
    assert "— success" in again
    assert "ingested 0 new sample knowledge entries" in ok("demo")
    refused = ok("runs", "fail", run_id[:8], code=1)
    assert refused.strip() == f"run {run_id} is not running (it is success); nothing to fail"
    assert leftovers(data) == {}  # every command stopped what it started


# -- a worker or broker that dies mid-run ------------------------------------------------------------


# Seconds from the kill to the CLI's one line and to its exit: bounds that a CLI waiting for its run (it once
# waited an hour) fails, with room for a loaded 2-core CI machine. The 6 s broker grace itself is checked on a
# fake clock (tests/unit/test_liveness.py); measured here: said 6.2-6.9 s and exited 9.9-19 s after the kill.


def test_run_wait_exit_codes_say_how_the_run_ended(deps, settings, redis_url, monkeypatch, tmp_path):
    # Entries that reach the classifier (an entry with no candidate is orphaned without a call).
    routing = json.loads((demo.HERE / "expected_routing.json").read_text())
    sample = [e for e in demo.entries(datetime.now(UTC) - timedelta(hours=1))
              if routing[str(e.id)]["outcome"] in ("enrich", "redundant")]
    with deps.session() as s:
        store.upsert_entries(s, entries=sample)
    env = {"PLAYBOOK_SYNC_DATABASE_URL": settings.database_url, "PLAYBOOK_SYNC_BROKER_URL": settings.broker_url,
           "PLAYBOOK_SYNC_REPO_PATH": str(settings.playbook_path), "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir),
           "PLAYBOOK_SYNC_LLM": "tests.support:FailingLLM"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()

    def run_with(fail_ids: list[uuid.UUID], name: str) -> tuple[int, str, SyncRun]:
        with worker_process(app, env=env | {FAIL_IDS_ENV: ",".join(map(str, fail_ids))}, name=name,
                            log_file=tmp_path / f"{name}.log"):
            result = CliRunner().invoke(cli_app, ["run", "--wait"], env={"COLUMNS": "200"})
        with deps.session() as s:
            run = s.scalars(select(SyncRun).order_by(SyncRun.run_at.desc()).limit(1)).one()
            s.expunge(run)
        return result.exit_code, result.output, run

    try:
        code, out, run = run_with([e.id for e in sample], "all-fail")
        assert (code, run.status) == (1, "failed"), out  # every entry failed: failed, not partial
        assert run.entries_failed == run.entries_processed == len(sample)
        code, out, run = run_with([sample[0].id], "one-fails")
        assert (code, run.status) == (2, "partial"), out
        code, out, run = run_with([], "healthy")
        assert (code, run.status) == (0, "success"), out
        with deps.session() as s:  # the failed entry of the partial run was owed to this one
            assert s.get(RunItem, (run.id, sample[0].id)).status != "failed"
    finally:
        get_settings.cache_clear()


def _point_the_cli_at(settings, monkeypatch) -> None:
    """In-process CLI commands (CliRunner) use this test's database, broker, playbook and data dir."""
    for key, value in {"PLAYBOOK_SYNC_DATABASE_URL": settings.database_url, "PLAYBOOK_SYNC_BROKER_URL": settings.broker_url,
                       "PLAYBOOK_SYNC_REPO_PATH": str(settings.playbook_path),
                       "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir)}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


# -- runs fail ----------------------------------------------------------------------------------------------


def test_runs_fail_ends_a_running_run_once(deps, settings, redis_url, monkeypatch):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC) - timedelta(hours=1)))
    with deps.session() as s:
        started = pipeline.start_run(s, deps)  # ...and its chord is never sent
    _point_the_cli_at(settings, monkeypatch)
    try:
        first = CliRunner().invoke(cli_app, ["runs", "fail", str(started.run_id)[:8]], env={"COLUMNS": "200"})
        second = CliRunner().invoke(cli_app, ["runs", "fail", str(started.run_id)[:8]], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    n = len(started.entry_ids)
    assert first.output.strip() == (f"run {started.run_id} failed; the window stays and its {n} entries are owed "
                                    "to the next run")
    assert second.exit_code == 1 and second.output.strip() == f"run {started.run_id} is not running (it is failed); nothing to fail"
    with deps.session() as s:
        run = s.get(SyncRun, started.run_id)
        assert run.status == "failed" and run.entries_failed == run.entries_processed == n
        assert "failed by an operator" in run.error_log and store.last_window_end(s) is None


# -- a wait that cannot end soon says what it waits for ------------------------------------------------


def test_run_wait_says_what_it_waits_for_then_gives_up_in_one_line(deps, settings, redis_url, monkeypatch, tmp_path):
    from playbook_sync.cli import follow as cli_follow

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC) - timedelta(hours=1)))
    env = {"PLAYBOOK_SYNC_DATABASE_URL": settings.database_url, "PLAYBOOK_SYNC_BROKER_URL": settings.broker_url,
           "PLAYBOOK_SYNC_REPO_PATH": str(settings.playbook_path), "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli_follow, "STALL_NOTICE", 0.5)
    monkeypatch.setattr(cli_follow, "RUN_TIMEOUT", 4.0)
    get_settings.cache_clear()
    try:
        unserved = CliRunner().invoke(cli_app, ["run", "--wait"], env={"COLUMNS": "200"})  # no worker at all
        app.control.purge()  # the queued start_run must not reach a later test's worker
        slow = env | {"PLAYBOOK_SYNC_LLM": "tests.support:SlowLLM", SLOW_ENV: "30"}  # a live worker, stuck in calls
        with worker_process(app, env=slow, concurrency=1, name="stalled", log_file=tmp_path / "w.log") as proc:
            stalled = CliRunner().invoke(cli_app, ["run", "--wait"], env={"COLUMNS": "200"})
            proc.kill()  # no warm shutdown: its task would take 30 s
        app.control.purge()
    finally:
        get_settings.cache_clear()
    assert unserved.exit_code == 1, unserved.output
    assert "waiting for a worker to take start_run from queue playbook_sync" in unserved.output
    assert "no worker took start_run" in unserved.output and "Traceback" not in unserved.output
    assert stalled.exit_code == 1, stalled.output
    assert re.search(r"no progress for \d+s; waiting for \d+ of \d+ entries still pending on queues", stalled.output), stalled.output
    assert "still running after 4s; it goes on in the background" in stalled.output


# -- held entries are counted ---------------------------------------------------------------------------


def test_runs_and_runs_show_count_held_entries(deps, settings, redis_url, monkeypatch):
    """A run with held entries (learning.py) printed counts that did not add up: `4 = 2 0 0 0 0`."""
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC) - timedelta(hours=1))[:4])
    with deps.session() as s:
        started = pipeline.start_run(s, deps)
    with deps.session() as s:
        for i, entry_id in enumerate(started.entry_ids):
            item = s.get(RunItem, (started.run_id, entry_id))
            item.status, item.error = ("held", "held for review: low confidence") if i < 2 else ("orphaned", None)
    _point_the_cli_at(settings, monkeypatch)
    try:
        listed = CliRunner().invoke(cli_app, ["runs"], env={"COLUMNS": "200"})
        shown = CliRunner().invoke(cli_app, ["runs", "show", str(started.run_id)[:8]], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0 and "4 = 0 0 2 0 0 2" in listed.output and "failed held" in listed.output, listed.output
    assert shown.exit_code == 0 and "0 failed, 2 held" in shown.output, shown.output
