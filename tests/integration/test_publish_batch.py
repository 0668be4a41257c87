"""start_run publishes a run's chord header in Redis pipelines (worker/app.py publish_batched), and the chord
still behaves: every header task is delivered and processed, the callback runs once."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest
import redis
from kombu.transport import redis as kombu_redis
from sqlalchemy import select

from playbook_sync import demo, store
from playbook_sync.models import RunItem, SyncRun
from playbook_sync.schemas import ItemStatus
from playbook_sync.worker import tasks
from playbook_sync.worker.app import PUBLISH_BATCH, app
from playbook_sync.worker.local import wait_for_run, worker_process
from tests.integration.test_worker import worker_env

pytestmark = pytest.mark.integration
N = 2 * PUBLISH_BATCH + 50  # two full pipelines and a partial one


def entries(n: int):
    sample = demo.entries(datetime.now(UTC))
    return [e.model_copy(update={"id": uuid.uuid4(), "content": f"{e.content} (call {i})"})
            for i, e in zip(range(n), sample * math.ceil(n / len(sample)))]


def test_the_header_goes_out_in_pipelines_and_the_chord_completes(deps, settings, redis_url, tmp_path, monkeypatch):
    with deps.session() as s:
        store.upsert_entries(s, entries=entries(N))
    flushed: list[int] = []  # messages per pipeline round trip
    one_by_one: list[str] = []  # messages sent with a round trip each
    flush, put = kombu_redis.PublishBatch.flush, kombu_redis.Channel._put

    def counting_flush(self):
        if self._buffered:
            flushed.append(self._buffered)
        return flush(self)

    def counting_put(self, queue, message, **kwargs):
        if "_publish_batch" not in kwargs:
            one_by_one.append(message["headers"]["task"])
        return put(self, queue, message, **kwargs)

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", counting_flush)
    monkeypatch.setattr(kombu_redis.Channel, "_put", counting_put)
    for key, value in worker_env(settings).items():  # the task body runs here, with the worker's settings
        monkeypatch.setenv(key, value)
    tasks.deps.cache_clear()
    client = redis.Redis.from_url(redis_url)
    calls = lambda command: client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)  # noqa: E731
    pushes, subscribes = calls("lpush"), calls("subscribe")
    try:
        started = tasks.start_run(trigger="test")  # the task's body in this process: no worker consumes yet
    finally:
        tasks.deps.cache_clear()
    assert started["entries"] == N
    # Redis got every header message, in ceil(N / PUBLISH_BATCH) round trips, none one by one.
    assert flushed == [PUBLISH_BATCH, PUBLISH_BATCH, N - 2 * PUBLISH_BATCH]
    assert "playbook_sync.process_entry" not in one_by_one
    assert calls("lpush") - pushes == N
    assert calls("subscribe") == subscribes  # nobody waits on the header's results: no channel subscribed per entry
    assert client.pubsub_channels("celery-task-meta-*") == []
    assert client.llen(settings.llm_queue) == N

    run_id = uuid.UUID(started["run_id"])
    with worker_process(app, env=worker_env(settings), log_file=tmp_path / "worker.log"):
        wait_for_run(settings.database_url, run_id, timeout=300, poll=0.2, summarize=lambda r: r.status)
    with deps.session() as s:
        run = s.get(SyncRun, run_id)
        statuses = list(s.scalars(select(RunItem.status).where(RunItem.run_id == run_id)))
    log = (tmp_path / "worker.log").read_text()
    assert run.status in ("success", "partial") and run.finished_at is not None, log[-3000:]
    assert len(statuses) == N and ItemStatus.pending not in statuses  # every entry has its outcome
    succeeded = [line for line in log.splitlines() if '"logger": "celery.app.trace"' in line and "] succeeded in" in line]
    assert sum("Task playbook_sync.process_entry[" in line for line in succeeded) == N  # each header task ran once
    assert sum("Task playbook_sync.finalize_run[" in line for line in succeeded) == 1  # then the callback, once
    assert client.llen(settings.llm_queue) == 0
