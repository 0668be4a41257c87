"""create_app() → Celery; `app` is the only module-level app. Nothing connects at import."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from celery.backends.asynchronous import AsyncBackendMixin
from kombu import Exchange, Queue

import playbook_sync.worker.signals  # noqa: F401  (structured logs with run_id/entry_id)
from playbook_sync.config import Settings, get_settings
from playbook_sync.worker.schedule import beat_schedule

# Tasks that call the LLM: routed to settings.llm_queue (stable names: Flower, routes, beat).
# poll_batches applies ended Message Batches and may classify failed results directly.
LLM_TASKS = ("playbook_sync.process_entry", "playbook_sync.finalize_run", "playbook_sync.poll_batches",
             "playbook_sync.generate_playbook_content")


# Messages per Redis pipeline when a run's chord header is published (publish_batched).
PUBLISH_BATCH = 100


class PlaybookCelery(Celery):
    """Celery whose publishers in a publish_batched block share that block's batching producer."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._batching = threading.local()

    def producer_or_acquire(self, producer=None):
        # A chord's header is published by group.apply_async through this call with no producer
        # (chord.apply_async does not pass one on), so the batch has to be found here.
        return super().producer_or_acquire(producer or getattr(self._batching, "producer", None))


@contextmanager
def publish_batched(app: Celery, size: int = PUBLISH_BATCH) -> Iterator[None]:
    """Tasks published in this block (this thread) go to Redis in pipelines of `size` messages.

    A round trip per message made a 1,000-entry header take ~0.8 s of the start task's thread;
    in pipelines of 100, ~0.4 s (2 busy cores). kombu buffers the messages in a non-transactional
    pipeline and flushes it when full and at the end of the block; an error in the block discards
    what was not flushed yet. A header cut short (this way or, as before, by a publish failing
    midway) leaves its run to the watchdog. Other apps and transports publish one by one.
    """
    local = getattr(app, "_batching", None)
    # Not ours, already batching, or eager (nothing is published: a producer would only connect for nothing).
    if local is None or getattr(local, "producer", None) is not None or app.conf.task_always_eager:
        yield
        return
    with app.producer_or_acquire() as producer, producer.batch(max_size=size), _results_untracked(app):
        local.producer = producer
        try:
            yield
        finally:
            local.producer = None


@contextmanager
def _results_untracked(app: Celery) -> Iterator[None]:
    """Results created in this block (this thread) are not subscribed to.

    group.apply_async ties every header result to a barrier, and Celery's Redis backend subscribes to
    each one's channel for it (one SUBSCRIBE per entry, sent alone), even for tasks that ignore their
    result. Nobody waits on a run's header: the callback is the chord's. bench/ (1,000 entries, 32
    threads): the header took 2.0-3.1 s of the start thread, 0.3 s without the subscriptions.
    """
    backend = app.backend
    # Only this thread's own instance: a thread-safe backend is one instance for every thread, whose results
    # (a .get() elsewhere) would then go unheard for the block; it keeps its subscriptions.
    if not isinstance(backend, AsyncBackendMixin) or backend.thread_safe:
        yield
        return
    backend.add_pending_result = lambda result, weak=False, start_drainer=True: result
    try:
        yield
    finally:
        del backend.add_pending_result  # the class's method again


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from settings (broker and backend are the same Redis)."""
    settings = settings or get_settings()
    broker = settings.broker_url or "redis://127.0.0.1:6379/0"
    app = PlaybookCelery("playbook_sync", broker=broker, backend=settings.result_backend or broker, include=["playbook_sync.worker.tasks", "playbook_sync.worker.builder_tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        # A worker that dies mid-task must not lose the message: ack after the task,
        # and re-queue when the worker process is lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Above the longest task (settings), or Redis hands a running task to a second worker. A worker killed
        # while it restores due messages holds kombu's restore lock until the lock expires (300 s by default),
        # and no worker restores a dead one's messages until then: bounded by the visibility timeout, what a
        # message waits for redelivery anyway, with a 10 s floor (a restore takes milliseconds).
        broker_transport_options={"visibility_timeout": settings.visibility_timeout,
                                  "unacked_mutex_expire": min(300, max(10, settings.visibility_timeout))},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        # LLM-bound tasks get their own queue: their own workers (threads pool) and rate limit.
        task_default_queue=settings.queue,
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in (settings.queue, settings.llm_queue)],
        # (a worker started without -Q consumes both queues)
        task_routes={name: {"queue": settings.llm_queue} for name in LLM_TASKS},
        task_annotations={"playbook_sync.process_entry": {"rate_limit": settings.llm_rate_limit}} if settings.llm_rate_limit else None,
        # Task events let Flower show every task (and `celery events` follow a run). Off unless asked
        # for (settings.task_events): Flower enables them in the workers it watches (bench: ~1 ms of
        # worker and Redis CPU per task, a fifth of the per-entry budget of issue 12).
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
    )
    return app


def _settings_or_exit() -> Settings:
    """Settings, or one line and exit 1: a worker with bad settings must not print a traceback wall."""
    from playbook_sync.errors import explain

    try:
        return get_settings()
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise
        raise SystemExit(f"playbook-sync worker: error: {message}") from None


app = create_app(_settings_or_exit())
