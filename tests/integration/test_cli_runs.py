"""The CLI on the embedded profile as a user drives it: every verb in sequence, a worker or broker
that dies mid-run, a command killed outright, SIGTERM/SIGINT, and exit codes that say what happened."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from playbook_sync import demo, pipeline, store
from playbook_sync.cli import app as cli_app
from playbook_sync.config import get_settings
from playbook_sync.models import RunItem, SyncRun
from playbook_sync.providers.localgit import init_repo
from playbook_sync.worker.app import app
from playbook_sync.worker.local import worker_process
from tests.support import FAIL_IDS_ENV, SLOW_ENV
from tests.waiting import communicate_timed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(Path(sys.executable).parent / "playbook-sync")  # the real console script
ENTRIES = demo.HERE / "entries.jsonl"
COUNTS = re.compile(r"(\d+) = (\d+) (\d+) (\d+) (\d+) (\d+)")


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_SYNC_")}
    # PYTHONPATH: the command may load a test provider (tests.support) named in its settings.
    return env | {"PLAYBOOK_SYNC_DATA_DIR": str(data_dir), "COLUMNS": "200", "PYTHONPATH": str(ROOT)} | extra


def cli(data_dir: Path, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], cwd=ROOT, env=cli_env(data_dir, **extra), capture_output=True, text=True,
                          timeout=timeout)


def spawn(data_dir: Path, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([SCRIPT, *args], cwd=ROOT, env=cli_env(data_dir, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def processes_of(data_dir: Path) -> dict[int, str]:
    """pid → command line of every process started for this data dir (the CLI exports it to its
    children: the worker, valkey-server and postgres all carry it in their environment)."""
    marker = f"PLAYBOOK_SYNC_DATA_DIR={data_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"  # a zombie is gone too
    except (OSError, IndexError):
        return False


def leftovers(data_dir: Path) -> dict[int, str]:
    """processes_of, plus the servers named by their pid files: valkey-server rewrites its
    environment area with its process title, so only its pid file tells it is ours."""
    found = processes_of(data_dir)
    servers = [(f, "valkey-server") for f in (data_dir / "redis").glob("*/valkey.pid")]  # one directory per command
    for pid_file, name in (*servers, (data_dir / "pg" / "postmaster.pid", "postgres")):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if alive(pid):
            found[pid] = name
    return found


def worker_log_shows_progress(data_dir: Path) -> bool:
    log = data_dir / "worker.log"
    return log.exists() and re.search(r"playbook_sync\.process_entry\[[^\]]+\] succeeded", log.read_text(errors="replace")) is not None


def row_counts(runs_output: str, run_prefix: str) -> tuple[int, ...]:
    line = next(line for line in runs_output.splitlines() if line.startswith(run_prefix))
    return tuple(int(n) for n in COUNTS.search(line).groups())


@pytest.fixture
def data() -> Path:
    """A data dir outside pytest's tmp dirs: pytest prunes old ones (other sessions' too) while a
    server in them may still be running."""
    path = Path(tempfile.mkdtemp(prefix="playbook-sync-cli-")) / "data"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def sample_playbook(data_dir: Path) -> None:
    init_repo(data_dir / "playbook", demo.playbook_files())


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
SAYS_WITHIN = {"worker": 15.0, "broker": 20.0}
EXITS_WITHIN = 60.0


@pytest.mark.parametrize("victim", ["worker", "broker"])
def test_run_notices_its_local_worker_or_broker_died(victim, data):
    sample_playbook(data)
    assert cli(data, "ingest", str(ENTRIES)).returncode == 0
    slow = {"PLAYBOOK_SYNC_LLM": "tests.support:SlowLLM", SLOW_ENV: "1.5"}
    proc = spawn(data, "run", **slow)
    try:
        wait_until(lambda: worker_log_shows_progress(data) or proc.poll() is not None, 120, "the first entries")
        assert proc.poll() is None, proc.communicate()
        ours = processes_of(data)
        if victim == "worker":
            [pid] = [p for p, cmd in ours.items() if "celery" in cmd and " worker " in cmd]
        else:
            [pid] = [int(f.read_text()) for f in (data / "redis").glob("*/valkey.pid")]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        out, err, lines, exited = communicate_timed(proc, timeout=120)  # before: waited an hour without a word
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    said = [line.rstrip("\n") for _, line in lines if " failed: " in line]
    assert len(said) == 1 and "the window stays and its entries are owed to the next run" in said[0], out
    said_at = next(at for at, line in lines if " failed: " in line) - killed
    assert said_at <= SAYS_WITHIN[victim], f"the CLI said so {said_at:.1f}s after the {victim} was killed"
    assert exited - killed <= EXITS_WITHIN, f"the CLI exited {exited - killed:.1f}s after the {victim} was killed"
    if victim == "worker":
        assert "the local worker exited (code -9)" in said[0], said[0]
    else:  # whichever the CLI noticed first: the broker silent, or the worker giving up on it
        assert "does not answer" in said[0] or "the local worker exited" in said[0], said[0]
    assert "Traceback" not in err, err
    run_prefix = said[0].split()[1]
    listed = cli(data, "runs")
    total, *outcomes = row_counts(listed.stdout, run_prefix)
    assert total == 32 == sum(outcomes) and outcomes[-1] > 0  # counts from the items, failed ones included
    rerun = cli(data, "run")  # not refused: the dead run is over, its entries owed to this one
    assert rerun.returncode == 0 and "— success" in rerun.stdout, rerun.stdout + rerun.stderr
    assert re.search(r"│\s+32\s+│", rerun.stdout), rerun.stdout  # every entry again, none lost
    wait_until(lambda: not leftovers(data), 30, "every process of this data dir to end")


def test_run_reaps_a_run_left_running_by_a_command_that_was_killed(data, tmp_path):
    sample_playbook(data)
    assert cli(data, "ingest", str(ENTRIES)).returncode == 0
    proc = spawn(data, "run", PLAYBOOK_SYNC_LLM="tests.support:SlowLLM", **{SLOW_ENV: "1.5"})
    try:
        wait_until(lambda: worker_log_shows_progress(data), 120, "the first entries")
    finally:
        proc.kill()  # the command dies outright (a closed laptop): no cleanup at all
        proc.communicate()
    for pid, cmd in leftovers(data).items():  # ...and its worker and broker with it; postgres stays
        if "postgres" not in cmd:
            os.kill(pid, signal.SIGKILL)
    refused_before = "another playbook-sync run is already running"
    rerun = cli(data, "run")
    assert refused_before not in rerun.stdout
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    line = next(line for line in rerun.stdout.splitlines() if "was left running" in line)
    assert line.endswith("was left running by a command that is gone; marked it failed (its entries are owed to the next run)")
    assert "— success" in rerun.stdout and re.search(r"│\s+32\s+│", rerun.stdout)
    reaped = line.split()[1]
    total, *outcomes = row_counts(cli(data, "runs").stdout, reaped)
    assert total == 32 == sum(outcomes) and outcomes[-1] > 0
    wait_until(lambda: not leftovers(data), 30, "every process of this data dir to end")


# -- signals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_command_stops_every_service_it_started(sig, data):
    proc = spawn(data, "demo", PLAYBOOK_SYNC_LLM="tests.support:SlowLLM", **{SLOW_ENV: "1.5"})
    try:
        # Services are up and the worker is started once it is among the processes (its log file
        # is opened before the worker process exists).
        wait_until(lambda: any("celery" in c for c in leftovers(data).values()) or proc.poll() is not None, 120,
                   "the local worker")
        assert proc.poll() is None, proc.communicate()
        up = leftovers(data)
        assert {"valkey-server", "postgres"} <= set(up.values()), up
        assert any("celery" in c for c in up.values()), up
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out
    assert "Traceback" not in err, err
    wait_until(lambda: not [p for p in up if alive(p)] and not leftovers(data), 30,
               f"no worker, valkey-server or postgres of {data} left: {leftovers(data)}")
    pid_file = data / "pg" / "postmaster.pid"
    assert not pid_file.exists()  # postgres stopped cleanly (pg_ctl stop removes it)


def test_a_command_killed_with_sigkill_takes_its_worker_with_it(data):
    """SIGKILL cannot be handled, so the worker is tied to its parent's life (PR_SET_PDEATHSIG):
    before, each killed command left a worker consuming from its broker for good."""
    proc = spawn(data, "demo", PLAYBOOK_SYNC_LLM="tests.support:SlowLLM", **{SLOW_ENV: "1.5"})
    try:
        wait_until(lambda: any("celery" in c for c in processes_of(data).values()) or proc.poll() is not None,
                   120, "the local worker")
        workers = [pid for pid, c in processes_of(data).items() if "celery" in c]
        assert workers and proc.poll() is None, proc.communicate()
        proc.kill()
        proc.wait(10)
        wait_until(lambda: not [p for p in workers if alive(p)], 30, f"the worker {workers} to die with its command")
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in leftovers(data):  # what SIGKILL leaves by design (the servers); the next command reaps runs
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- exit codes: 0 success, 1 failed, 2 partial ---------------------------------------------------------


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
