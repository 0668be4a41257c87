"""Tasks that do nothing, for the floor of a run's Celery machinery (bench/floor.py).

A worker started with `--include bench.floor_tasks` registers them on the real app: the same
broker, result backend, queues, acks, signals and task events as process_entry.
"""

from __future__ import annotations

from celery import chord, group

from playbook_sync.config import get_settings
from playbook_sync.worker.app import app, publish_batched


@app.task(name="bench.floor_entry", ignore_result=True)  # as process_entry: the chord counts it, nothing stored
def floor_entry(run_id: str, entry_id: str) -> dict:
    return {}


@app.task(name="bench.floor_finalize")
def floor_finalize(run_id: str) -> dict:
    return {"run_id": run_id}


@app.task(name="bench.floor_start")
def floor_start(run_id: str, entries: int) -> dict:
    """start_run's fan-out without its work: the header published in batches, the callback after it."""
    queue = get_settings().llm_queue
    with publish_batched(app):
        callback = chord(group(floor_entry.si(run_id, str(i)).set(queue=queue) for i in range(entries)),
                         floor_finalize.si(run_id).set(queue=queue)).apply_async()
    return {"callback": callback.id, "entries": entries}
