"""Run a real Celery worker as a subprocess and wait for runs (CLI demo, local runs, tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from celery import Celery

from playbook_sync import store
from playbook_sync.db import ROOT, session_scope, transient
from playbook_sync.errors import ServiceError
from playbook_sync.lifecycle import summary
from playbook_sync.models import SyncRun

DB_GRACE = 30.0  # seconds the database may be unreachable (a restart) before following a run gives up


@contextmanager
def worker_process(app: Celery, *, concurrency: int = 4, name: str = "local", env: dict[str, str] | None = None,
                   log_file: Path | None = None, ready_timeout: float = 60,
                   include: tuple[str, ...] = ()) -> Iterator[subprocess.Popen]:
    """Start `celery worker` (threads pool) with the current environment; stop it on exit.

    include: more task modules to import (bench/floor_tasks.py)."""
    cmd = [sys.executable, "-m", "celery", "-A", "playbook_sync.worker.app", "worker", "-P", "threads", "-c", str(concurrency),
           "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
           *(["--include", ",".join(include)] if include else [])]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent)
    try:
        wait_ready(app, proc, ready_timeout, log_file=log_file)
        yield proc
    finally:
        stop(proc)
        if log_file:
            out.close()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started us dies (Linux).

    A command killed with SIGKILL cannot stop its worker; without this the orphan kept
    consuming from a broker nobody else uses, one more stray per kill (found by hand).
    SIGTERM is Celery's warm shutdown: a task in flight finishes or is redelivered.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker outlives a SIGKILLed parent, as before
        pass


def wait_ready(app: Celery, proc: subprocess.Popen, timeout: float, log_file: Path | None = None) -> None:
    """Block until the worker answers a ping; a ServiceError (one line in the CLI) if it died or stayed silent."""
    # The why (a bad import, a killed process, a full disk) is in the worker's log, not in our traceback.
    see = f"; see {log_file}" if log_file else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"the local worker exited (code {proc.returncode}) before it was ready{see}")
        if app.control.ping(timeout=0.5):
            return
    raise ServiceError(f"the local worker did not answer within {timeout:g}s of starting{see}")


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
    from playbook_sync.worker.tasks import start_run

    started = task_result(start_run.delay(trigger=trigger), timeout=timeout, poll=poll)
    if "run_id" not in started:
        return started
    return wait_for_run(database_url, uuid.UUID(started["run_id"]), timeout=timeout, poll=poll, summarize=summary)


def task_result(result, *, timeout: float, poll: float):
    """The task's return value (its exception, if it failed) once it finished; TimeoutError after timeout."""
    return await_task(result, deadline=time.monotonic() + timeout, poll=poll)["result"]


class BrokerSilent(RuntimeError):
    """The result backend did not answer while a task was awaited (and nothing said to wait it out)."""


Waiting = Callable[[float], None]  # seconds since the wait began


def await_task(result, *, deadline: float, poll: float = 0.2, check: Callable[[], str | None] | None = None,
               on_wait: Waiting | None = None) -> dict:
    """The task's stored meta (status, result) once it finished; the one way a task is awaited.

    Reads the raw meta, not result.ready(): that would build AsyncResults for a chord's
    children, whose __del__ talks to Redis at interpreter exit, after an embedded Redis
    stopped. With check (see follow_run) a backend that does not answer counts as pending
    and check decides when to give up (WorkerLost); without it, BrokerSilent. on_wait gets
    the seconds waited on each poll; past the monotonic deadline, TimeoutError.
    """
    backend, since = result.backend, time.monotonic()
    try:
        while True:
            try:
                meta = backend.get_task_meta(result.id)
            except Exception as exc:  # noqa: BLE001  (any driver error: the backend is unreachable)
                if check is None:
                    raise BrokerSilent(str(exc)) from exc
                meta = {"status": "PENDING"}
            if meta["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
                return meta
            if check is not None and (reason := check()):
                raise WorkerLost(reason)
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {result.id} not finished in time")
            if on_wait is not None:
                on_wait(time.monotonic() - since)
            time.sleep(poll)
    finally:
        try:
            # The Redis backend subscribed to this result when the task was sent; unsubscribe
            # now, while Redis is up, not in AsyncResult.__del__ after an embedded Redis stopped.
            backend.remove_pending_result(result)
        except Exception:  # noqa: BLE001, S110  (a dead broker has nothing left to unsubscribe from)
            pass


def wait_for_run(database_url: str, run_id: uuid.UUID, *, timeout: float, poll: float, summarize) -> dict:
    """Poll the run row until it is finished."""
    return follow_run(database_url, run_id, deadline=time.monotonic() + timeout, poll=poll, summarize=summarize)


class WorkerLost(RuntimeError):
    """The worker (or the broker) a run depends on is gone: the run will never finish by itself."""


Progress = Callable[[int, int], None]  # (items, items still pending)


def follow_run(database_url: str, run_id: uuid.UUID, *, deadline: float, poll: float = 0.3, summarize=summary,
               on_progress: Progress | None = None, check: Callable[[], str | None] | None = None) -> dict:
    """Poll the run until it leaves 'running' and return summarize(run); the one follow loop.

    on_progress gets (items, pending) each poll; check returns why the run can no longer
    finish (its worker died, the broker is gone), which raises WorkerLost; past the
    monotonic deadline, TimeoutError.
    """
    away_since = None
    while True:
        try:
            with session_scope(database_url) as session:
                run = session.get(SyncRun, run_id)
                if run.status != "running":
                    return summarize(run)
                if on_progress is not None:
                    rows = store.item_counts(session, run_ids=[run_id]).get(run_id, {})
                    on_progress(sum(rows.values()), rows.get("pending", 0))
            away_since = None
        except Exception as exc:  # a restarting PostgreSQL ("the database system is starting up") is not a gone one
            away_since = away_since or time.monotonic()
            if not transient(exc) or time.monotonic() - away_since > DB_GRACE:
                raise
        if check is not None and (reason := check()):
            raise WorkerLost(reason)
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still running")
        time.sleep(poll)


class Liveness:
    """Why a run can no longer finish, or None: the local worker exited, or the broker does not answer.

    The worker is checked on every call (a poll of its process); the broker at most every
    broker_every seconds with a one-second timeout, and only a broker silent for
    broker_grace seconds counts as gone (a restarting Redis is not a dead one).

    Silence is counted from the first ping that failed, so it is declared gone up to a ping
    interval late; with a ping every 2 s that was up to 8 s after the embedded Redis was
    killed (6.5-8.7 s measured), not the README's "about 6 s". A ping costs about 2 ms (a
    connection and a PING on localhost), so the broker is pinged twice a second, and on every
    call once it has failed to answer: gone within broker_grace + broker_every + one poll.
    """

    def __init__(self, proc: subprocess.Popen | None, broker_url: str | None, *, broker_every: float = 0.5,
                 broker_grace: float = 6.0) -> None:
        self.proc, self.broker_url = proc, broker_url
        self.broker_every, self.broker_grace = broker_every, broker_grace
        self._next_ping, self._silent_since = 0.0, None

    def __call__(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"the local worker exited (code {self.proc.returncode})"
        now = time.monotonic()
        if not self.broker_url or (self._silent_since is None and now < self._next_ping):
            return None
        self._next_ping = now + self.broker_every
        if broker_answers(self.broker_url):
            self._silent_since = None
            return None
        self._silent_since = self._silent_since or now
        if now - self._silent_since >= self.broker_grace:
            return f"the broker at {redact(self.broker_url)} does not answer"
        return None


def broker_answers(url: str, timeout: float = 1.0) -> bool:
    """True when the Redis at url answers PING within timeout."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redact(url: str) -> str:
    """The URL without its password (it is printed)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
