"""The beat schedule: the weekly run (default Sunday 00:00 UTC), with `expires`."""

from __future__ import annotations

from celery.schedules import crontab

from playbook_sync.config import Settings


def beat_schedule(settings: Settings) -> dict:
    """The weekly start_run; `expires` drops a tick that waited too long in the queue."""
    minute, hour, day_of_month, month, day_of_week = settings.schedule_cron.split()
    return {
        "weekly-playbook-sync": {
            "task": "playbook_sync.start_run",
            "schedule": crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                                month_of_year=month, day_of_week=day_of_week),
            "kwargs": {"trigger": "schedule"},
            "options": {"expires": settings.schedule_expires_seconds},
        },
        "watchdog": {
            "task": "playbook_sync.watchdog",
            "schedule": float(settings.watchdog_interval_seconds),
            "options": {"expires": settings.watchdog_interval_seconds},
        },
    } | ({
        # Batch mode: resumes runs whose Message Batch ended (state is in the DB, so this
        # also picks up batches submitted before a worker or beat restart).
        "poll-batches": {
            "task": "playbook_sync.poll_batches",
            "schedule": float(settings.batch_poll_seconds),
            "options": {"expires": settings.batch_poll_seconds},
        },
    } if settings.llm_batch else {})
