"""The embedded Redis a killed command leaves behind is stopped by the next one; a live command's is not."""

from __future__ import annotations

import subprocess

import psutil
import pytest

from playbook_sync.local_services import OWNER_FILE, start_redis

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("owner", ["dead", "huge"])
def test_the_next_command_stops_a_valkey_server_whose_command_was_killed(tmp_path, owner):
    first, _ = start_redis(tmp_path)
    leftover = first.pid
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs: the command that started the server, killed with SIGKILL
    (tmp_path / "redis" / OWNER_FILE).write_text(str(gone.pid))
    if owner == "huge":
        (tmp_path / "redis" / OWNER_FILE).write_text("99999999999999999999")  # no process has it (was an OverflowError)
    second, _ = start_redis(tmp_path)
    try:
        assert not psutil.pid_exists(leftover) or psutil.Process(leftover).status() == psutil.STATUS_ZOMBIE
        assert second.pid and second.pid != leftover
    finally:
        second.stop()


def test_a_valkey_server_whose_command_still_runs_is_left_alone(tmp_path):
    first, _ = start_redis(tmp_path)  # owned by this test process, alive
    sibling = first.pid
    second, _ = start_redis(tmp_path)
    try:
        assert psutil.pid_exists(sibling) and "valkey" in psutil.Process(sibling).name()
    finally:
        second.stop()
        psutil.Process(sibling).terminate()
