"""Faults on real parts: a worker SIGKILLed mid-chord, Redis restarted, racing starts, stuck runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select

from playbook_sync import demo, lifecycle, pipeline, store
from playbook_sync.callouts import CLOSER, OPENERS
from playbook_sync.deps import Deps
from playbook_sync.faults import CRASH_ENV
from playbook_sync.models import InsertedCallout, RunItem, SyncRun
from playbook_sync.schemas import FINAL_ITEM_STATUSES
from playbook_sync.worker.app import app
from playbook_sync.worker.local import task_result, wait_for_run, worker_process
from tests.blocks import duplicate_blocks
from tests.gated import gate_env
from tests.support import variants
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
FINAL = {s.value for s in FINAL_ITEM_STATUSES} | {"deferred", "failed"}


def worker_env(settings, **extra) -> dict[str, str]:
    return {
        "PLAYBOOK_SYNC_DATABASE_URL": settings.database_url,
        "PLAYBOOK_SYNC_BROKER_URL": settings.broker_url,
        "PLAYBOOK_SYNC_REPO_PATH": str(settings.playbook_path),
        "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir),
    } | extra


def classified_sample(now):
    routing = json.loads((demo.HERE / "expected_routing.json").read_text())
    return [e for e in demo.entries(now) if routing[str(e.id)]["outcome"] in ("enrich", "redundant")]


def done_items(deps, run_id) -> int:
    with deps.session() as s:
        return s.scalar(select(func.count()).select_from(RunItem).where(RunItem.run_id == run_id, RunItem.status != "pending"))


def commits(settings) -> int:
    out = subprocess.run(["git", "-C", str(settings.playbook_path), "rev-list", "--count", "main"], capture_output=True, text=True)
    return int(out.stdout)


def assert_no_duplicate_blocks(deps):
    tree = deps.repo.read_tree("docs")
    with deps.session() as s:
        callouts = list(s.scalars(select(InsertedCallout)))
        pairs = Counter((c.sop_file_path, e) for c in callouts for e in c.entry_ids)
    assert not [p for p, n in pairs.items() if n > 1]
    for c in callouts:
        assert tree[c.sop_file_path].decode().count(c.block) == 1, c.sop_file_path


def test_worker_killed_mid_chord(deps, settings, redis_url, tmp_path):
    now = datetime.now(UTC)
    entries = variants(classified_sample(now), 200, now - timedelta(minutes=1))
    with deps.session() as s:
        store.upsert_entries(s, entries=entries)
    gate = tmp_path / "gate"  # forty entries pass, the rest wait at the gate until the kill
    env = worker_env(settings, PLAYBOOK_SYNC_VISIBILITY_TIMEOUT="2") | gate_env(gate, after=40)
    with worker_process(app, env=env, name="doomed", log_file=tmp_path / "a.log") as doomed:
        from playbook_sync.worker.tasks import start_run

        run_id = uuid.UUID(task_result(start_run.delay(), timeout=60, poll=0.2)["run_id"])
        wait_for(lambda: done_items(deps, run_id) >= 40, 60, "forty entries classified")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
    assert done_items(deps, run_id) == 40  # really mid-chord
    gate.touch()
    # The rescuer restores the dead worker's unacked messages when it starts, if they are due by
    # then (older than the 2 s visibility timeout); its next sweep would be ~100 s later.
    broker = redis.Redis.from_url(settings.broker_url)

    def due() -> bool:
        held = broker.zcard("unacked_index")
        return held > 0 and broker.zcount("unacked_index", "-inf", time.time() - 2) == held

    wait_for(due, 30, "the killed worker's unacknowledged messages to be due for redelivery")
    broker.close()
    with worker_process(app, env=env, name="rescuer", log_file=tmp_path / "b.log"):
        try:
            outcome = wait_for_run(settings.database_url, run_id, timeout=90, poll=0.3, summarize=lambda r: r.status)
        except TimeoutError as exc:
            raise AssertionError((tmp_path / "b.log").read_text()[-4000:]) from exc
    assert outcome in ("success", "partial"), (tmp_path / "b.log").read_text()[-2000:]
    with deps.session() as s:
        statuses = list(s.scalars(select(RunItem.status).where(RunItem.run_id == run_id)))
    assert len(statuses) == 200 and set(statuses) <= FINAL
    assert commits(settings) == 2
    assert_no_duplicate_blocks(deps)
    assert duplicate_blocks(deps.repo.read_tree("docs")) == []  # by the files, not only what the DB recorded
    # An entry this run ended 'failed' (e.g. "never processed (task lost)") is owed, not done:
    # after the next run every entry has an outcome other than failed.
    assert pipeline.run_inline(deps)["status"] in ("success", "partial")
    with deps.session() as s:
        rows = s.execute(select(RunItem.entry_id, RunItem.status).join(SyncRun, SyncRun.id == RunItem.run_id)
                         .order_by(SyncRun.run_at)).all()
    latest = dict(rows)  # the last run that took each entry
    assert {e.id for e in entries} <= set(latest) and "failed" not in {latest[e.id] for e in entries}
    assert duplicate_blocks(deps.repo.read_tree("docs")) == []


def test_two_simultaneous_starts_make_one_run(settings):
    from playbook_sync.providers.localgit import init_repo

    init_repo(settings.playbook_path, demo.playbook_files())
    barrier, results = threading.Barrier(2), []

    def start():
        d = Deps.from_settings(settings)
        barrier.wait()
        try:
            with d.session() as s:
                results.append(pipeline.start_run(s, d).run_id)
        except store.RunLocked as exc:
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [r for r in results if isinstance(r, store.RunLocked)]
    assert len(refused) == 1 and "already running" in str(refused[0])
    with Deps.from_settings(settings).session() as s:
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 1


def test_watchdog_fails_a_stuck_run_and_the_next_run_takes_its_entries(deps):
    now = datetime.now(UTC)
    sample = demo.entries(now - timedelta(hours=1))
    with deps.session() as s:
        store.upsert_entries(s, entries=sample)
    with deps.session() as s:
        stuck = pipeline.start_run(s, deps, now=now).run_id  # ...and its chord is lost
    later = datetime.now(UTC) + timedelta(minutes=11)
    with deps.session() as s:
        assert lifecycle.reap_stuck_runs(s, repo=deps.repo, deadline_seconds=3600, now=later) == []  # not yet
    with deps.session() as s:
        assert lifecycle.reap_stuck_runs(s, repo=deps.repo, deadline_seconds=600, now=later) == [stuck]
    with deps.session() as s:
        run = s.get(SyncRun, stuck)
        assert run.status == "failed" and "watchdog" in run.error_log
        assert store.last_window_end(s) is None
    result = pipeline.run_inline(deps, now=later)
    assert result["status"] == "success" and result["entries"] == len(sample)


TAG = re.compile(r"\be([0-9a-f]{8})\b")
SOP_TITLE = re.compile(r'^title:\s*"?SOP [^:]+:\s*(.+?)"?\s*$', re.M)


def callout_tags(tree: dict[str, bytes]) -> Counter:
    """(SOP, entry) → how many callout blocks in the file name that entry (TaggedLLM bodies)."""
    found: Counter = Counter()
    for path, content in tree.items():
        lines = content.decode().splitlines()
        for i, line in enumerate(lines[:-2]):
            if line in OPENERS and CLOSER in lines[i + 2:i + 4]:  # with or without the attribution line
                found.update((path, tag) for tag in set(TAG.findall(lines[i + 1])))
    return found


def new_sop_titles(tree: dict[str, bytes]) -> Counter:
    """Titles (without their numbers) of the auto-generated SOPs in the tree."""
    return Counter(m.group(1) for c in tree.values() if b"Auto-Generated" in c
                   for m in [SOP_TITLE.search(c.decode())] if m)


def git_out(settings, *args) -> str:
    return subprocess.run(["git", "-C", str(settings.playbook_path), *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_a_run_ended_by_the_command_following_it_says_failed_only_when_it_failed(point, deps, settings, redis_url, tmp_path):
    # After a kill -9 of the local worker the CLI ends the run (follow._lost); an adopted run's log read
    # "...; failed by the command that was following it (its commit ... had landed: adopted)" and ended success.
    from playbook_sync import finalize
    from playbook_sync.worker.tasks import start_run

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC) - timedelta(minutes=5)))
    env = worker_env(settings, PLAYBOOK_SYNC_LLM="tests.support:TaggedLLM")
    with worker_process(app, env=env | {CRASH_ENV: point}, name="doomed", log_file=tmp_path / "a.log") as doomed:
        run_id = uuid.UUID(task_result(start_run.delay(), timeout=60, poll=0.2)["run_id"])
        doomed.wait(timeout=180)
    ended = finalize.fail_run(deps, run_id=run_id, error="the local worker exited (code -9)",
                              by="the command that was following it")
    with deps.session() as s:
        log = s.get(SyncRun, run_id).error_log or ""
    if point == "before-commit":
        assert ended["status"] == "failed" and not ended.get("adopted")
        assert "the local worker exited (code -9); failed by the command that was following it" in log, log
    else:
        assert ended["status"] == "success" and ended["adopted"]
        assert (f"the local worker exited (code -9); the run's commit {ended['adopted'][:12]} had landed, "
                "so the command that was following it adopted it") in log, log
        assert "failed" not in log, log


@pytest.mark.parametrize("point", ["before-commit", "after-update-ref", "after-commit"])
def test_worker_killed_in_finalize_then_reaped_writes_nothing_twice(point, deps, settings, redis_url, tmp_path):
    from playbook_sync.worker.tasks import start_run

    now = datetime.now(UTC)
    sample = demo.entries(now - timedelta(minutes=5))
    with deps.session() as s:
        store.upsert_entries(s, entries=sample)
    env = worker_env(settings, PLAYBOOK_SYNC_LLM="tests.support:TaggedLLM")
    with worker_process(app, env=env | {CRASH_ENV: point}, name="doomed", log_file=tmp_path / "a.log") as doomed:
        run_id = uuid.UUID(task_result(start_run.delay(), timeout=60, poll=0.2)["run_id"])
        try:
            doomed.wait(timeout=180)  # it dies at the crash point, as a SIGKILL would
        except subprocess.TimeoutExpired as exc:
            raise AssertionError((tmp_path / "a.log").read_text()[-3000:]) from exc
        assert doomed.returncode == 137
    with deps.session() as s:
        assert s.get(SyncRun, run_id).status == "running"  # nobody did the bookkeeping
    assert commits(settings) == (1 if point == "before-commit" else 2)
    first_tags = callout_tags(deps.repo.read_tree("docs"))

    with deps.session() as s:  # the watchdog's ending (no beat needed: deadline 0)
        assert lifecycle.reap_stuck_runs(s, repo=deps.repo, settings=settings, deadline_seconds=0) == [run_id]
    with deps.session() as s:
        reaped = s.get(SyncRun, run_id)
        counted = Counter(s.scalars(select(RunItem.status).where(RunItem.run_id == run_id)))
        assert reaped.entries_processed == len(sample) == sum(counted.values())  # counts from the items
        assert reaped.entries_failed == counted["failed"]
        if point == "before-commit":
            assert reaped.status == "failed" and reaped.commit_sha is None
        else:  # its commit landed: adopted, and the run closed with what it wrote
            assert reaped.status == "success" and reaped.commit_sha == git_out(settings, "rev-parse", "main").strip()
            assert counted["failed"] == 0 and counted["enriched"] > 0
    # The checkout follows the branch: a person's `git commit -a` now would not revert the callouts.
    assert git_out(settings, "status", "--porcelain") == ""

    with worker_process(app, env=env, name="next", log_file=tmp_path / "b.log"):
        rerun = uuid.UUID(task_result(start_run.delay(), timeout=60, poll=0.2)["run_id"])
        try:
            status = wait_for_run(settings.database_url, rerun, timeout=120, poll=0.3, summarize=lambda r: r.status)
        except TimeoutError as exc:
            raise AssertionError((tmp_path / "b.log").read_text()[-3000:]) from exc
    assert status == "success"
    tree = deps.repo.read_tree("docs")
    tags = callout_tags(tree)
    assert first_tags.keys() <= tags.keys() and tags, "the first run's callouts stay"
    assert [k for k, n in tags.items() if n > 1] == []  # by the files: no entry's callout twice in one SOP
    titles = new_sop_titles(tree)
    assert titles and [t for t, n in titles.items() if n > 1] == []  # no new SOP created twice
    with deps.session() as s:
        rerun_committed = s.get(SyncRun, rerun).commit_sha is not None
    assert rerun_committed or point != "before-commit"  # the redone run must write what the crash lost
    assert commits(settings) == 1 + (point != "before-commit") + rerun_committed  # one commit per run, at most
    with deps.session() as s:
        latest = {}
        for run in s.scalars(select(SyncRun).order_by(SyncRun.run_at)):
            for item in s.scalars(select(RunItem).where(RunItem.run_id == run.id)):
                latest[item.entry_id] = item.status
    assert {e.id for e in sample} <= latest.keys()
    assert not {e.id: latest[e.id] for e in sample if latest[e.id] in ("failed", "pending", "matched")}
