"""`playbook-sync flower` against the embedded broker while a worker runs a chord: its HTTP API sees both."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from playbook_sync import store
from playbook_sync.worker.app import app
from playbook_sync.worker.local import start_and_wait, stop, worker_process
from tests.integration.test_enqueue import TEXTS
from tests.integration.test_worker import worker_env
from tests.support import entry

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def poll(fetch, ready, timeout: float = 60):
    """fetch() until ready(value) holds; return the value."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = fetch()
            if ready(value):
                return value
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting; last answer: {str(value)[:1500]}")


def test_flower_api_lists_the_worker_and_the_tasks_it_ran(deps, settings, redis_url, tmp_path):
    entries = [entry(text, created_at=datetime.now(UTC), source=f"call-{i}") for i, text in enumerate(TEXTS[:4])]
    with deps.session() as s:
        store.upsert_entries(s, entries=entries)
    port, env = free_port(), {**os.environ, **worker_env(settings)}
    api = f"http://127.0.0.1:{port}/api"
    with worker_process(app, name="flowertest", env=worker_env(settings), log_file=tmp_path / "worker.log"):
        flower = subprocess.Popen([sys.executable, "-m", "playbook_sync.cli", "flower", "--port", str(port)], cwd=ROOT,
                                  env=env, stdout=open(tmp_path / "flower.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        try:
            workers = poll(lambda: get_json(f"{api}/workers?refresh=1"),
                           lambda w: any(name.startswith("flowertest-") for name in w))
            name = next(n for n in workers if n.startswith("flowertest-"))
            queues = {q["name"] for q in workers[name].get("active_queues") or []}
            assert queues == {settings.queue, settings.llm_queue}  # one worker consumes both queues here
            assert "playbook_sync.process_entry" in workers[name]["registered"]

            outcome = start_and_wait(settings.database_url, timeout=120)
            assert outcome["status"] == "success" and outcome["entries"] == 4

            def names(tasks: dict) -> list[str]:
                return sorted(t["name"] for t in tasks.values() if t.get("state") == "SUCCESS")

            tasks = poll(lambda: get_json(f"{api}/tasks"),
                         lambda t: names(t).count("playbook_sync.process_entry") == 4 and "playbook_sync.finalize_run" in names(t))
        finally:
            stop(flower)
    assert names(tasks) == ["playbook_sync.finalize_run"] + ["playbook_sync.process_entry"] * 4 + ["playbook_sync.start_run"]
    assert {t["worker"] for t in tasks.values()} == {name}
    entry_args = {t["args"] for t in tasks.values() if t["name"] == "playbook_sync.process_entry"}
    assert all(outcome["run_id"] in a for a in entry_args) and {str(e.id) for e in entries} == {
        next(str(e.id) for e in entries if str(e.id) in a) for a in entry_args}
    # Structured worker logs carry run_id and entry_id.
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines() if line.startswith("{")]
    tagged = [rec for rec in lines if rec.get("task") == "playbook_sync.process_entry"]
    assert tagged and all(rec["run_id"] == outcome["run_id"] and rec.get("entry_id") for rec in tagged)
