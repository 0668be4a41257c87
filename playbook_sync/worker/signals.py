"""Celery signal handlers: our structured logging, and run_id/entry_id bound for each task's logs."""

from __future__ import annotations

import inspect
from functools import lru_cache

from celery.signals import setup_logging, task_postrun, task_prerun

from playbook_sync import logs
from playbook_sync.config import get_settings


@setup_logging.connect
def _configure_logging(loglevel=None, **_) -> None:
    """Replace Celery's log setup (worker, beat): one JSON (or text) line per record."""
    logs.configure(level=loglevel or "INFO", fmt=get_settings().log_format)


@lru_cache(maxsize=256)
def _signature(run) -> inspect.Signature:
    # A task's signature does not change: inspecting it again for every task was ~0.4% of a worker's CPU (py-spy).
    return inspect.signature(run)


@task_prerun.connect
def _bind_task_fields(task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    """Every log line of a task carries its task id and name, and run_id/entry_id when it has them."""
    fields: dict[str, object] = {"task_id": task_id, "task": getattr(task, "name", None)}
    try:
        bound = _signature(task.run).bind_partial(*(args or ()), **(kwargs or {})).arguments
    except (TypeError, ValueError):
        bound = {}
    fields.update({k: bound[k] for k in ("run_id", "entry_id") if bound.get(k)})
    logs.set_fields(**fields)


@task_postrun.connect
def _unbind_task_fields(**_) -> None:
    # Pool threads are reused: the next task must not inherit this one's ids.
    logs.clear()
