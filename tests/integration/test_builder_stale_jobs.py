"""Builder jobs no process will finish end with a sentence instead of staying queued or running forever:
serve supervises its local worker (a killed worker is replaced, the jobs it had are failed, /healthz is
503 meanwhile), a serve that starts after one that is gone fails what that one left, and the watchdog
fails jobs without progress past JOB_DEADLINE_SECONDS. Real serve, embedded Redis, Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from playbook_sync.builder import generation
from playbook_sync.builder.models import GenerateRequest
from playbook_sync.builder.tables import GenerationJob
from playbook_sync.builder.users import local_user_id
from playbook_sync.worker.app import app
from playbook_sync.worker.local import task_result, worker_process
from tests.fakes.anthropic_server import FakeAnthropic
from tests.http import free_port
from tests.integration.test_faults import worker_env
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
TOKEN = "s3cret-op"


class Serve:
    """`playbook-sync serve` as a subprocess on the embedded profile (its own Redis and local worker)."""

    def __init__(self, settings, tmp_path: Path, **env: str) -> None:
        self.port, self.log = free_port(), tmp_path / f"serve-{uuid.uuid4().hex[:6]}.log"
        self.env = {"PATH": os.environ["PATH"], "PLAYBOOK_SYNC_ENV_FILE": os.devnull,
                    "PLAYBOOK_SYNC_DATABASE_URL": settings.database_url, "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir),
                    "PLAYBOOK_SYNC_API_TOKEN": TOKEN, "PLAYBOOK_SYNC_API_PORT": str(self.port)} | env
        if "PYTHONPATH" in os.environ:  # a checkout other than the installed one (comparing with main)
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.cwd = tmp_path

    def __enter__(self) -> Serve:
        self.out = open(self.log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "playbook_sync.cli", "serve"], cwd=self.cwd, env=self.env,
                                     stdout=self.out, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30,
                                   headers={"Authorization": f"Bearer {TOKEN}"})
        wait_for(self._up, 120, "serve to answer", poll=0.3, detail=self.text)
        return self

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.text()
        try:
            return self.client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def text(self) -> str:
        return self.log.read_text()

    def worker(self) -> psutil.Process:
        return next(c for c in psutil.Process(self.proc.pid).children() if "celery" in " ".join(c.cmdline()))

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/api/jobs/{job_id}").json()

    def generate(self, title: str, scenarios: int = 3) -> str:
        accepted = self.client.post("/api/playbooks/generate", json={"title": title, "scenarios": scenarios})
        assert accepted.status_code == 202, accepted.text
        return accepted.json()["id"]

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.client.close()
        self.out.close()


def test_serve_replaces_a_killed_worker_and_fails_the_job_it_had(settings, tmp_path):
    with FakeAnthropic(latency=1.0) as fake, \
            Serve(settings, tmp_path, PLAYBOOK_SYNC_LLM="anthropic", PLAYBOOK_SYNC_ANTHROPIC_API_KEY=fake.api_key,
                  PLAYBOOK_SYNC_ANTHROPIC_BASE_URL=fake.base_url) as serve:
        assert serve.client.get("/healthz").json()["worker"] == "ok"
        first = serve.generate("Worker Killed Mid Generation", 6)
        wait_for(lambda: serve.job(first)["status"] == "running", 60, "the job to run", detail=serve.text)
        old = serve.worker()
        old.kill()

        health = wait_for(lambda: (h := serve.client.get("/healthz")).status_code == 503 and h.json(), 30,
                          "/healthz to report the worker down", poll=0.1, detail=serve.text)
        assert health["worker"] == "down" and "killed by SIGKILL" in health["reason"], health
        job = wait_for(lambda: (j := serve.job(first))["status"] == "failed" and j, 30, "the job to fail")
        assert job["error"] == ("the local worker was killed by SIGKILL before this job finished; "
                                "generate again to retry"), job
        # Sent while the worker is down: it waits in serve's Redis and the new worker runs it.
        second = serve.generate("After worker death", 3)

        wait_for(lambda: serve.client.get("/healthz").status_code == 200, 120, "a new worker", detail=serve.text)
        assert serve.worker().pid != old.pid
        done = wait_for(lambda: (j := serve.job(second))["status"] in ("succeeded", "failed") and j, 120,
                        "the job sent during the outage", detail=serve.text)
        assert done["status"] == "succeeded", done
        lines = [line for line in serve.text().splitlines() if "local worker" in line]
        assert lines == ["the local worker was killed by SIGKILL: marked the 1 Playbook Builder job it had failed; "
                         "starting a new one (log: worker.log in the data dir)"], serve.text()


def test_a_serve_started_after_a_killed_one_fails_the_jobs_it_left(settings, tmp_path):
    with FakeAnthropic(latency=2.0) as fake:
        slow = {"PLAYBOOK_SYNC_LLM": "anthropic", "PLAYBOOK_SYNC_ANTHROPIC_API_KEY": fake.api_key,
                "PLAYBOOK_SYNC_ANTHROPIC_BASE_URL": fake.base_url}
        with Serve(settings, tmp_path, **slow) as gone:
            running = gone.generate("Running when serve died", 4)
            wait_for(lambda: gone.job(running)["status"] == "running", 60, "the job to run", detail=gone.text)
            worker = gone.worker()
            worker.suspend()  # so the next job stays queued in gone's Redis
            queued = gone.generate("Queued when serve died", 3)
            gone.proc.kill()  # a closed laptop: nothing is cleaned up
            worker.kill()
            gone.proc.wait(10)
        with generation_session(settings) as session:
            assert {session.get(GenerationJob, uuid.UUID(j)).status for j in (running, queued)} == {"running", "queued"}

        with Serve(settings, tmp_path) as serve:
            for job_id in (running, queued):
                job = serve.job(job_id)
                assert job["status"] == "failed", job
                assert job["error"] == ("the serve that queued this job stopped before the job finished; "
                                        "generate again to retry"), job
            assert ("2 Playbook Builder jobs left queued or running by a serve that is gone: marked failed "
                    "(generate again to retry from the page)") in serve.text()


def generation_session(settings):
    from playbook_sync.db import session_scope

    return session_scope(settings.database_url)


def _job(session, status: str, idle: timedelta) -> uuid.UUID:
    job = generation.start_playbook_job(session, local_user_id(session), GenerateRequest(title=f"{status} job"))
    job.status = status
    job.created_at = job.updated_at = datetime.now(UTC) - idle
    session.flush()
    return job.id


def test_a_live_serve_keeps_its_jobs_when_another_serve_starts(settings):
    from playbook_sync.cli.supervise import serve_claim

    with serve_claim(settings):  # the live serve, and a job it queued
        with generation_session(settings) as session:
            queued = _job(session, "queued", timedelta(0))
        with serve_claim(settings):  # the one starting beside it: not alone, so it judges nothing
            pass
        with generation_session(settings) as session:
            assert session.get(GenerationJob, queued).status == "queued"
    with serve_claim(settings):  # no serve left: the job can never run
        pass
    with generation_session(settings) as session:
        assert session.get(GenerationJob, queued).status == "failed"


def test_the_watchdog_fails_builder_jobs_without_progress_past_the_deadline(settings, redis_url, tmp_path):
    with generation_session(settings) as session:
        stale_running = _job(session, "running", timedelta(hours=2))
        stale_queued = _job(session, "queued", timedelta(hours=3))
        fresh = _job(session, "running", timedelta(minutes=5))
        finished = _job(session, "succeeded", timedelta(days=1))
    env = worker_env(settings, PLAYBOOK_SYNC_JOB_DEADLINE_SECONDS="3600")
    with worker_process(app, env=env, log_file=tmp_path / "worker.log", name="watchdog"):
        reaped = task_result(app.send_task("playbook_sync.watchdog"), timeout=60, poll=0.2)
    assert reaped == {"failed_runs": [], "failed_jobs": [str(stale_queued), str(stale_running)]}
    with generation_session(settings) as session:
        rows = {j: session.get(GenerationJob, j) for j in (stale_running, stale_queued, fresh, finished)}
        assert [rows[j].status for j in (stale_running, stale_queued, fresh, finished)] == \
            ["failed", "failed", "running", "succeeded"]
        assert rows[stale_running].error == ("watchdog: no progress for 3600s (its worker or its queued task was "
                                             "lost); generate again to retry")
