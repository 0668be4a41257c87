"""create_app() → Celery; `app` is the only module-level app. Nothing connects at import."""

from __future__ import annotations

from celery import Celery

from playbook_sync.config import Settings, get_settings
from worker.schedule import beat_schedule

def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from settings (broker and backend are the same Redis)."""
    settings = settings or get_settings()
    broker = settings.broker_url or "redis://127.0.0.1:6379/0"
    app = Celery("playbook_sync", broker=broker, backend=settings.result_backend or broker, include=["worker.tasks"])
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
        # Above the longest task (settings), or Redis hands a running task to a second worker.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
    )
    return app


app = create_app()
