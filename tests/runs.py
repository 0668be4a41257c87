"""Runs as the tests read and end them: the behaviour named once, not private helpers in many places."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from unittest import mock

from playbook_sync import finalize, lifecycle
from playbook_sync.deps import Deps
from playbook_sync.models import SyncRun


def summarize(run: SyncRun) -> dict:
    """What the tests check of a run, read from its row."""
    return {"run_id": str(run.id), "status": run.status, "commit_sha": run.commit_sha,
            "entries": run.entries_processed, "enriched": run.entries_enriched, "failed": run.entries_failed,
            "sops_enriched": list(run.sops_enriched or []), "sops_created": list(run.sops_created or [])}


def fail_run(deps: Deps, run_id: uuid.UUID, error: str) -> None:
    """End a running run from outside its chord, as the watchdog or `runs fail` does."""
    finalize.fail_run(deps, run_id=run_id, error=error)  # adopts a landed commit first


def finalize_or_fail(deps: Deps, run_id: uuid.UUID) -> dict:
    """The chord callback in-process: finalize, or fail the run on an error."""
    return finalize.finalize_or_fail(deps, run_id=run_id)


@contextmanager
def dies_after_the_commit():
    """Finalize raises right after its commit landed, before it records what it wrote."""
    error = RuntimeError("test: worker killed after the commit")
    with mock.patch.object(lifecycle, "settle_items", side_effect=error):
        yield
