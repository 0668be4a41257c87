"""Flower as compose runs it: basic auth from the environment (not argv), /healthcheck open for the probe."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from playbook_sync.worker.local import stop
from tests.integration.test_flower import free_port, poll

pytestmark = pytest.mark.integration
SECRET = "ops:flower-s3cret-pw"


def status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_flower_takes_basic_auth_from_the_environment_and_never_shows_it_on_a_command_line(redis_url, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAYBOOK_SYNC_", "FLOWER_"))}
    env |= {"PLAYBOOK_SYNC_BROKER_URL": redis_url, "PLAYBOOK_SYNC_FLOWER_BASIC_AUTH": SECRET,
            "PLAYBOOK_SYNC_DATA_DIR": str(tmp_path)}
    # Production shape (a broker URL is set): the command execs Flower in its own process.
    flower = subprocess.Popen([sys.executable, "-m", "playbook_sync.cli", "flower", "--address", "127.0.0.1",
                               "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=open(tmp_path / "flower.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    try:
        # What the compose healthcheck asks: answered without credentials.
        assert poll(lambda: status(f"{base}/healthcheck"), lambda code: code == 200, timeout=60) == 200
        assert status(f"{base}/api/workers") == 401
        assert status(f"{base}/api/workers", "ops:wrong") == 401
        assert status(f"{base}/api/workers", SECRET) == 200
        processes = [psutil.Process(flower.pid), *psutil.Process(flower.pid).children(recursive=True)]
        command_lines = [" ".join(p.cmdline()) for p in processes]
        assert any("flower" in line for line in command_lines)
        assert not any("s3cret" in line for line in command_lines), command_lines
    finally:
        stop(flower)
    assert "s3cret" not in Path(tmp_path / "flower.log").read_text(errors="replace")
