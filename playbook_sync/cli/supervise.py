"""`serve`'s local worker, supervised, and the builder jobs that no process will finish.

On the embedded profile the broker and the worker live only as long as `serve`: a builder job's
task waits in (or was taken from) that Redis, so a job still queued or running when its serve or
worker is gone would stay so for good. As local-worker.lock does for runs, a lock on
DATA_DIR/serve.lock tells who is alive: every serve holds it shared, so whoever can take it
exclusively knows no serve is left, and fails their unfinished jobs with a sentence. While serve
runs, a thread watches its worker: when the worker dies, serve says so in one line, fails the jobs
it had (the page shows why; generating again retries) and starts a new worker; /healthz is 503
meanwhile. Beat does not run locally, so the same thread applies the watchdog's job deadline.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from typing import IO

from playbook_sync import db
from playbook_sync.builder import generation
from playbook_sync.cli.shared import console, local_worker, local_worker_guard
from playbook_sync.config import Settings

POLL = 0.5
# Ctrl-C reaches the worker too (it shares serve's process group): before calling its exit a death,
# give serve a moment to notice that it is stopping itself.
EXIT_GRACE = 1.0
RESTART_BACKOFF = (1, 2, 5, 10, 30, 60)  # seconds between attempts when a new worker will not start
GONE = f"the serve that queued this job stopped before the job finished; {generation.RETRY_HINT}"


class ServeClaim:
    """This serve's shared hold on DATA_DIR/serve.lock (see the module docstring)."""

    def __init__(self, lock: IO) -> None:
        self._lock = lock

    @contextmanager
    def alone(self) -> Iterator[bool]:
        """True while no other serve holds the lock (then every unfinished job is ours to judge)."""
        try:
            # Converting a flock is not atomic: a failed upgrade drops the shared hold, so it is
            # always taken again below, whatever happened.
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield True
        except BlockingIOError:
            yield False
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_SH)


@contextmanager
def serve_claim(settings: Settings) -> Iterator[ServeClaim]:
    """Hold DATA_DIR/serve.lock shared; first, when no other serve is alive, fail the jobs dead ones left."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "serve.lock", "w") as lock:  # noqa: PTH123
        claim = ServeClaim(lock)
        with claim.alone() as alone:
            if alone:
                failed = fail_jobs(settings, GONE)
                if failed:
                    console.print(f"{_jobs(failed)} left queued or running by a serve that is gone: marked "
                                  f"failed ({generation.RETRY_HINT} from the page)", highlight=False)
        yield claim


def fail_jobs(settings: Settings, error: str, **which) -> list:
    with db.session_scope(settings.database_url) as session:
        return generation.fail_unfinished(session, error=error, **which)


def _jobs(ids: list) -> str:
    return f"{len(ids)} Playbook Builder job{'s' if len(ids) != 1 else ''}"


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Keeps a local worker running: started on enter; restarted (with backoff) whenever it dies.

    start() makes a worker context (worker.local.worker_process); on_death(how, dead_at) handles what
    the dead worker had (it was found dead at dead_at) and returns what it did, for the one line
    serve prints; on_tick runs every tick_seconds; stopping() is true once serve itself is shutting down.
    """

    def __init__(self, start: Callable[[], AbstractContextManager[subprocess.Popen]], *,
                 on_death: Callable[[str, datetime], str], on_tick: Callable[[], None], tick_seconds: float,
                 stopping: Callable[[], bool]) -> None:
        self._start, self._on_death, self._on_tick = start, on_death, on_tick
        self._tick_seconds, self._stopping = tick_seconds, stopping
        self._stop = threading.Event()
        self._stack = ExitStack()
        self._problem: str | None = None
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def problem(self) -> str | None:
        """Why the local worker is not serving tasks now, or None."""
        return self._problem

    def __enter__(self) -> Supervisor:
        self._proc = self._stack.enter_context(self._start())  # a worker that cannot start stops serve, as before
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._stack.close()

    def _watch(self) -> None:
        next_tick = time.monotonic() + self._tick_seconds
        while not self._stop.wait(POLL):
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_seconds
                self._guarded(self._on_tick, "the builder job deadline check")
            if self._proc.poll() is None:
                continue
            dead_at = datetime.now(UTC)
            if self._stop.wait(EXIT_GRACE) or self._stopping():
                return  # serve is stopping: its worker went with it
            how = f"the local worker {_how(self._proc.returncode)}"
            self._problem = f"{how}; starting a new one"
            self._stack.close()
            done = (self._guarded(functools.partial(self._on_death, how, dead_at), "failing its jobs")
                    or "its jobs were left as they are")
            console.print(f"{how}: {done}; starting a new one (log: worker.log in the data dir)", highlight=False)
            self._restart(how)

    def _restart(self, how: str) -> None:
        for attempt in itertools.count():
            if self._stop.is_set():
                return
            try:
                self._stack = ExitStack()
                self._proc = self._stack.enter_context(self._start())
                self._problem = None
                return
            except Exception as exc:  # noqa: BLE001  (any reason it would not start: say it, wait, try again)
                self._stack.close()
                wait = RESTART_BACKOFF[min(attempt, len(RESTART_BACKOFF) - 1)]
                self._problem = f"{how}; a new one did not start ({exc}); trying again in {wait}s"
                console.print(self._problem, highlight=False)
                self._stop.wait(wait)

    def _guarded(self, fn: Callable[[], str | None], what: str) -> str | None:
        # A database outage must not kill the thread that keeps the worker alive.
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            console.print(f"{what} failed: {type(exc).__name__}: {exc}", highlight=False, markup=False)
            return None


@contextmanager
def supervised_worker(celery_app, settings: Settings, stopping: Callable[[], bool]) -> Iterator[Supervisor]:
    """serve's local worker on the embedded profile: runs reaped and builder jobs judged as above."""
    with local_worker_guard(settings), serve_claim(settings) as claim:

        def on_death(how: str, dead_at: datetime) -> str:
            with claim.alone() as alone:
                if not alone:  # another serve's jobs may be among the unfinished: the deadline ends ours
                    return "another serve uses this data dir, so its unfinished builder jobs wait for the deadline"
                # A job created once the worker was found dead cannot have been taken by it: its task still
                # waits in our Redis, and the new worker runs it. Any older one may have been (prefetched).
                failed = fail_jobs(settings, f"{how} before this job finished; {generation.RETRY_HINT}",
                                   created_before=dead_at)
            return f"marked the {_jobs(failed)} it had failed" if failed else "it had no builder jobs"

        def on_tick() -> None:
            deadline = settings.job_deadline_seconds
            failed = fail_jobs(settings, generation.stale_job_error(deadline), idle_seconds=deadline)
            if failed:
                console.print(f"{_jobs(failed)} without progress for {deadline}s: marked failed", highlight=False)

        with Supervisor(lambda: local_worker(celery_app, settings), on_death=on_death, on_tick=on_tick,
                        tick_seconds=settings.watchdog_interval_seconds, stopping=stopping) as supervisor:
            yield supervisor
