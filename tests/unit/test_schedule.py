"""The beat schedule and Celery settings that keep messages safe."""

from __future__ import annotations

import pytest
from celery.schedules import crontab

from playbook_sync.config import Settings
from playbook_sync.worker.app import create_app
from playbook_sync.worker.schedule import beat_schedule

pytestmark = pytest.mark.unit


def test_weekly_default_sunday_midnight_utc_with_expires():
    entry = beat_schedule(Settings(_env_file=None))["weekly-playbook-sync"]
    assert entry["task"] == "playbook_sync.start_run"
    assert entry["schedule"] == crontab(minute="0", hour="0", day_of_week="0")
    assert entry["options"]["expires"] == 6 * 3600


def test_schedule_is_configurable():
    entry = beat_schedule(Settings(_env_file=None, schedule_cron="30 6 * * 1"))["weekly-playbook-sync"]
    assert entry["schedule"] == crontab(minute="30", hour="6", day_of_week="1")


def test_app_acks_late_and_requeues_on_worker_loss():
    app = create_app(Settings(_env_file=None, broker_url="redis://127.0.0.1:1/0"))
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_transport_options["visibility_timeout"] >= 3600
    assert "playbook_sync.worker.tasks" in app.conf.include


def test_tasks_have_stable_names():
    import playbook_sync.worker.tasks  # noqa: F401  (registers the tasks on the module-level app)
    from playbook_sync.worker.app import app

    assert {"playbook_sync.start_run", "playbook_sync.process_entry", "playbook_sync.finalize_run"} <= set(app.tasks)
