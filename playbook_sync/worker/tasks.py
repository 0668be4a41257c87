"""Thin tasks: ids in, small dicts out. Header tasks never raise (DESIGN §2.5)."""

from __future__ import annotations

import uuid
from functools import lru_cache

from celery import chord, group
from celery.utils.log import get_task_logger

from playbook_sync import adhoc, batch, db, finalize, lifecycle, pipeline
from playbook_sync.builder import generation
from playbook_sync.config import get_settings
from playbook_sync.deps import Deps
from playbook_sync.providers.base import TransientProviderError
from playbook_sync.providers.localgit import RepoPathError
from playbook_sync.providers.retry import backoff
from playbook_sync.store import RunLocked
from playbook_sync.worker.app import app, publish_batched

log = get_task_logger(__name__)


@lru_cache(maxsize=1)
def deps() -> Deps:
    """Providers and settings, built once per worker process."""
    return Deps.from_settings(get_settings())


@app.task(name="playbook_sync.start_run")
def start_run(trigger: str = "manual", scope: dict | None = None) -> dict:
    """Open a run and fan out one process_entry per entry, with finalize_run as the callback.

    scope (adhoc.Scope.to_dict()) makes it an ad-hoc run over exactly the named entries.
    """
    d = deps()
    try:
        with d.session() as session:
            started = pipeline.start_run(session, d, trigger=trigger,
                                         scope=adhoc.Scope.from_dict(scope) if scope else None)
    except (RunLocked, adhoc.ScopeError, RepoPathError) as exc:  # refused: nothing was opened
        log.warning("%s", exc)
        return {"status": "refused", "reason": str(exc)}
    run_id = str(started.run_id)
    callback = finalize_run.si(run_id)
    if started.entry_ids:
        with publish_batched(app):  # the header in pipelines of PUBLISH_BATCH, not a round trip per entry
            chord(group(process_entry.si(run_id, str(e)) for e in started.entry_ids), callback).apply_async()
    else:
        callback.apply_async()
    return {"run_id": run_id, "entries": len(started.entry_ids)}


# ignore_result: nobody reads a header task's result (the callback reads outcomes from the DB), so
# it is not stored under its own key; the chord still counts it (the backend's chord part return).
@app.task(name="playbook_sync.process_entry", bind=True, max_retries=None, ignore_result=True)
def process_entry(self, run_id: str, entry_id: str) -> dict:
    """Embed (cache hit) → match → classify one entry; failures are recorded, never raised."""
    d = deps()
    try:
        with d.session() as session:
            return pipeline.process_entry(session, d, run_id=uuid.UUID(run_id), entry_id=uuid.UUID(entry_id))
    except Exception as exc:
        # A provider's or the database's transient error (PostgreSQL restarting, a lost connection) is
        # retried with the whole entry; anything else, or retries spent, is recorded below.
        if isinstance(exc, TransientProviderError) or db.transient(exc):
            if self.request.retries < d.settings.task_max_retries:
                raise self.retry(exc=exc, countdown=backoff(self.request.retries, d.settings.task_retry_backoff)) from exc
            error = f"gave up after {self.request.retries + 1} attempts: {exc}"
        else:
            error = f"{type(exc).__name__}: {exc}"
    log.warning("entry %s failed in run %s: %s", entry_id, run_id, error)
    try:
        with d.session() as session:
            return lifecycle.record_failure(session, run_id=uuid.UUID(run_id), entry_id=uuid.UUID(entry_id), error=error)
    except Exception as exc:  # the database is still away: raising would stop the chord, and its callback with it
        log.error("entry %s: its failure could not be recorded (%s); finalize_run marks it failed", entry_id, exc)
        return {"entry_id": entry_id, "status": "failed", "error": error[:200], "recorded": False}


# A database outage outlasts the entries' few quick retries; the callback must outlast it too, or the run
# stays 'running' and every later run is refused. finalize_run is made to run again after an unfinished
# attempt (it forgets that attempt's plan and adopts a commit that landed), so retrying it is safe.
FINALIZE_RETRIES, FINALIZE_BACKOFF_MAX = 12, 60.0  # about 5 to 10 minutes in all


@app.task(name="playbook_sync.finalize_run", bind=True, max_retries=None)
def finalize_run(self, run_id: str) -> dict:
    """Roll up, edit, commit once, log the run; an error fails the run (window stays). While the database
    cannot even record that, finalize is retried."""
    try:
        return finalize.finalize_or_fail(deps(), run_id=uuid.UUID(run_id))
    except Exception as exc:
        if db.transient(exc) and self.request.retries < FINALIZE_RETRIES:
            log.warning("finalize of run %s could not reach the database (%s); retrying", run_id, exc)
            raise self.retry(exc=exc, countdown=backoff(self.request.retries, 2.0, FINALIZE_BACKOFF_MAX)) from exc
        raise


@app.task(name="playbook_sync.poll_batches")
def poll_batches() -> dict:
    """Poll running runs' Message Batches; apply ended ones, then finalize those runs (batch mode)."""
    d = deps()
    with d.session() as session:
        ready = batch.poll(session, d.llm, d.ledger)
    for run_id in ready:  # after the commit above, so finalize sees the applied results
        finalize_run.delay(str(run_id))
    return {"finalizing": [str(r) for r in ready]}


@app.task(name="playbook_sync.watchdog")
def watchdog() -> dict:
    """Fail runs stuck in 'running' past the deadline, so the next run takes their entries; and builder
    jobs without progress past theirs, so nobody waits on a job no worker will finish."""
    d = deps()
    stuck = finalize.reap_stuck_runs(d)
    with d.session() as session:
        jobs = generation.reap_stale_jobs(session, d.settings.job_deadline_seconds)
    return {"failed_runs": [str(r) for r in stuck], "failed_jobs": [str(j) for j in jobs]}
