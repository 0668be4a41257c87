"""The CLI on the embedded profile when something dies: a worker or broker mid-run, a command killed
outright or stopped by SIGTERM/SIGINT; nothing is left running and nothing is lost."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.clis import (
    ENTRIES,
    alive,
    cli,
    leftovers,
    processes_of,
    row_counts,
    sample_playbook,
    spawn,
    wait_until,
    worker_log_shows_progress,
)
from tests.support import SLOW_ENV
from tests.waiting import communicate_timed

pytestmark = pytest.mark.integration


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


