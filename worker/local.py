"""Run a real Celery worker as a subprocess and wait for runs (CLI demo, local runs, tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery import Celery

from playbook_sync.db import ROOT, session_scope
from playbook_sync.models import SyncRun


@contextmanager
def worker_process(app: Celery, *, concurrency: int = 4, name: str = "local", env: dict[str, str] | None = None,
                   log_file: Path | None = None, ready_timeout: float = 60) -> Iterator[subprocess.Popen]:
    """Start `celery worker` (threads pool) with the current environment; stop it on exit."""
    cmd = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-P", "threads", "-c", str(concurrency),
           "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(app, proc, ready_timeout)
        yield proc
    finally:
        stop(proc)
        if log_file:
            out.close()


def wait_ready(app: Celery, proc: subprocess.Popen, timeout: float) -> None:
    """Block until the worker answers a ping (or fail if it died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with code {proc.returncode} before it was ready")
        if app.control.ping(timeout=0.5):
            return
    raise TimeoutError("celery worker did not become ready")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Warm shutdown (SIGTERM), then kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_and_wait(database_url: str, *, trigger: str = "manual", timeout: float = 600, poll: float = 0.5) -> dict:
    """Enqueue start_run, then wait for the run row to leave 'running'; return its summary."""
    from playbook_sync.finalize import summary
    from worker.tasks import start_run

    started = task_result(start_run.delay(trigger=trigger), timeout=timeout, poll=poll)
    if "run_id" not in started:
        return started
    return wait_for_run(database_url, uuid.UUID(started["run_id"]), timeout=timeout, poll=poll, summarize=summary)


def task_result(result, *, timeout: float, poll: float):
    """Poll a task's stored result (no pub/sub subscription left behind at exit)."""
    deadline = time.monotonic() + timeout
    while not result.ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {result.id} not finished after {timeout:.0f}s")
        time.sleep(poll)
    # The Redis backend subscribed to this result when the task was sent; unsubscribe
    # now, while Redis is up, not in AsyncResult.__del__ after an embedded Redis stopped.
    result.backend.on_result_fulfilled(result)
    return result.result


def wait_for_run(database_url: str, run_id: uuid.UUID, *, timeout: float, poll: float, summarize) -> dict:
    """Poll the run row until it is finished."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(database_url) as session:
            run = session.get(SyncRun, run_id)
            if run.status != "running":
                return summarize(run)
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still running after {timeout:.0f}s")
        time.sleep(poll)
