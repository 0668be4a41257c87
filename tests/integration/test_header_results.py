"""publish_batched leaves a run's header results untracked (worker/app.py _results_untracked): no SUBSCRIBE per header
task, nothing left in the backend, and the backend as before once the block ends, in this thread and in others."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from playbook_sync import store
from playbook_sync.worker.app import _results_untracked, app, create_app, publish_batched
from playbook_sync.worker.local import task_result, wait_for_run, worker_process
from tests.integration.test_publish_batch import entries
from tests.integration.test_worker import worker_env

pytestmark = pytest.mark.integration


def _store_later(url: str, task_id: str, value, delay: float = 0.5) -> threading.Thread:
    def later():
        time.sleep(delay)
        other = create_app_for(url)
        other.backend.store_result(task_id, value, "SUCCESS")
    t = threading.Thread(target=later, daemon=True)
    t.start()
    return t


def create_app_for(url: str):
    from celery import Celery
    return Celery("other", broker=url, backend=url)


def test_backend_normal_after_block_same_thread(redis_url):
    backend = app.backend
    with publish_batched(app):
        assert "add_pending_result" in vars(backend)
    assert "add_pending_result" not in vars(backend)
    with pytest.raises(RuntimeError), publish_batched(app):
        raise RuntimeError("boom")
    assert "add_pending_result" not in vars(backend)
    task_id = str(uuid.uuid4())
    _store_later(redis_url, task_id, 42)
    assert app.AsyncResult(task_id).get(timeout=10) == 42  # a later get() in the same thread still subscribes
    app.backend.result_consumer.cancel_for(task_id)


def _heard_during(celery_app, block, redis_url: str) -> list:
    """What another thread's .get() returns for a result stored while `block` is open in this thread."""
    got: list = []
    task_id = str(uuid.uuid4())
    inside, done = threading.Event(), threading.Event()

    def waiter():
        inside.wait(5)
        try:
            got.append(celery_app.AsyncResult(task_id).get(timeout=4))
        except Exception as exc:  # noqa: BLE001
            got.append(type(exc).__name__)
        done.set()

    threading.Thread(target=waiter, daemon=True).start()
    with block:
        inside.set()
        _store_later(redis_url, task_id, 7)
        done.wait(8)
    return got


def test_other_threads_unaffected_during_block(redis_url):
    assert _heard_during(app, publish_batched(app), redis_url) == [7]


@pytest.mark.parametrize("thread_safe", [False, True])
def test_thread_safe_backend_shared_instance(redis_url, settings, thread_safe):
    """With result_backend_thread_safe the backend is one instance for every thread: it keeps its subscriptions,
    so another thread's .get() during the block still hears its result."""
    other = create_app(settings)
    other.conf.update(broker_url=redis_url, result_backend=redis_url, result_backend_thread_safe=thread_safe)
    assert _heard_during(other, _results_untracked(other), redis_url) == [7]


@pytest.mark.parametrize("backend_url", ["db+sqlite:///{tmp}/r.db", "rpc://", "cache+memory://"])
def test_non_redis_backends(redis_url, settings, tmp_path, backend_url):
    other = create_app(settings)
    other.conf.update(broker_url=redis_url, result_backend=backend_url.format(tmp=tmp_path))
    backend = other.backend
    with _results_untracked(other):
        pass
    assert "add_pending_result" not in vars(backend)


def test_chord_on_two_workers_leaves_no_channels(deps, settings, redis_url, tmp_path):
    workers = 2  # one worker: test_publish_batch
    n = 150
    with deps.session() as s:
        store.upsert_entries(s, entries=entries(n))
    client = redis.Redis.from_url(redis_url)
    from contextlib import ExitStack

    from playbook_sync.worker.tasks import start_run
    logs = [tmp_path / f"w{i}.log" for i in range(workers)]
    with ExitStack() as stack:
        for i in range(workers):
            stack.enter_context(worker_process(app, env=worker_env(settings), name=f"w{i}", log_file=logs[i],
                                               concurrency=2))
        started = task_result(start_run.delay(trigger="test"), timeout=120, poll=0.2)
        run_id = uuid.UUID(started["run_id"])
        status = wait_for_run(settings.database_url, run_id, timeout=300, poll=0.3, summarize=lambda r: r.status)
        chans = client.pubsub_channels("celery-task-meta-*")
        numsub = client.pubsub_numsub(*chans) if chans else []
    text = "".join(p.read_text() for p in logs)
    assert status in ("success", "partial"), text[-3000:]
    done = [line for line in text.splitlines() if "] succeeded in" in line]
    assert sum("Task playbook_sync.process_entry[" in line for line in done) == n
    assert sum("Task playbook_sync.finalize_run[" in line for line in done) == 1
    assert chans == [], numsub


def test_header_results_leave_nothing_behind_in_this_threads_backend(redis_url):
    import gc

    from celery import chord, group

    from playbook_sync.worker.tasks import finalize_run, process_entry
    client = redis.Redis.from_url(redis_url)
    subs = client.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0)
    with publish_batched(app):
        chord(group(process_entry.si("r", str(i)).set(queue="untracked-void") for i in range(300)),
              finalize_run.si("r").set(queue="untracked-void")).apply_async()
    gc.collect()
    consumer = app.backend.result_consumer
    concrete, weak = app.backend._pending_results
    assert (len(concrete), len(weak), len(consumer.subscribed_to), len(consumer._pending_unsubscribe)) == (0, 0, 0, 0)
    assert client.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0) == subs
    client.delete("untracked-void")
