"""The compose healthchecks, run as written in docker-compose.yml against a real worker and a schedule file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from playbook_sync.worker.app import app
from playbook_sync.worker.local import stop, wait_ready

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def shell_check(service: str, env: dict[str, str], **replace: str) -> subprocess.CompletedProcess:
    """Run a service's CMD-SHELL healthcheck the way the container would ($$ is compose's escaped $)."""
    kind, command = SERVICES[service]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    command = command.replace("$$", "$")
    for old, new in replace.items():
        command = command.replace(old, new)
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)


def test_worker_healthcheck_pings_its_own_node_name(redis_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_SYNC_")}
    env |= {"PLAYBOOK_SYNC_BROKER_URL": redis_url, "HOSTNAME": socket.gethostname(),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # `celery` of this environment
    # The worker service's node name (-n light@%h), on a queue of its own so it takes no other test's tasks.
    cmd = [sys.executable, "-m", "celery", "-A", "playbook_sync.worker.app", "worker", "-P", "threads", "-c", "1", "-n", "light@%h",
           "-Q", "healthcheck-test", "--without-gossip", "--without-mingle"]
    assert "light@%h" in SERVICES["worker"]["command"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=open(tmp_path / "worker.log", "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    try:
        wait_ready(app, proc, 60)
        healthy = shell_check("worker", env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        # The same check from a container whose worker is not this one fails.
        elsewhere = shell_check("worker", env | {"HOSTNAME": "some-other-host"})
        assert elsewhere.returncode != 0
        # worker-llm's check differs only in the node name it addresses.
        llm = shell_check("worker-llm", env, **{"llm@": "light@"})
        assert llm.returncode == 0, llm.stdout + llm.stderr
    finally:
        stop(proc)


def test_beat_healthcheck_reads_the_schedule_file_as_a_heartbeat(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = dict(os.environ)
    assert shell_check("beat", env, **{"/data": str(data)}).returncode != 0  # beat never wrote it
    schedule = data / "celerybeat-schedule.dat"
    schedule.write_bytes(b"x")
    assert shell_check("beat", env, **{"/data": str(data)}).returncode == 0
    stale = time.time() - 11 * 60  # beat writes it every ~3 minutes while it runs
    os.utime(schedule, (stale, stale))
    assert shell_check("beat", env, **{"/data": str(data)}).returncode != 0
    assert "--schedule" in SERVICES["beat"]["command"] and "/data/celerybeat-schedule" in SERVICES["beat"]["command"]
