"""The chord on a real Celery worker (subprocess, threads pool) over real Redis."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from playbook_sync import demo, store
from playbook_sync.models import KnowledgeSopMatch, RunItem
from playbook_sync.worker.app import app
from playbook_sync.worker.local import start_and_wait, worker_process
from tests.support import FAIL_IDS_ENV

pytestmark = pytest.mark.integration


def worker_env(settings) -> dict[str, str]:
    return {
        "PLAYBOOK_SYNC_DATABASE_URL": settings.database_url,
        "PLAYBOOK_SYNC_BROKER_URL": settings.broker_url,
        "PLAYBOOK_SYNC_REPO_PATH": str(settings.playbook_path),
        "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir),
    }


def fifty_entries(now: datetime):
    """The 32 sample entries plus 18 reworded copies of the ones that reach the classifier."""
    sample = demo.entries(now)
    routing = json.loads((demo.HERE / "expected_routing.json").read_text())
    classified = [e for e in sample if routing[str(e.id)]["outcome"] in ("enrich", "redundant")]
    extra = [
        e.model_copy(update={"id": uuid.uuid4(), "content": f"{e.content} Seen again on call {i}."})
        for i, e in zip(range(50 - len(sample)), classified * 3)
    ]
    return sample + extra, classified


def test_fifty_entries_five_permanent_failures_end_partial(deps, settings, redis_url, tmp_path):
    now = datetime.now(UTC)
    entries, classified = fifty_entries(now)
    assert len(entries) == 50
    failing = [str(e.id) for e in classified[:5]]
    with deps.session() as s:
        store.upsert_entries(s, entries=entries)
    env = worker_env(settings) | {"PLAYBOOK_SYNC_LLM": "tests.support:FailingLLM", FAIL_IDS_ENV: ",".join(failing)}
    head = deps.repo.head()
    with worker_process(app, env=env, log_file=tmp_path / "worker.log"):
        outcome = start_and_wait(settings.database_url, timeout=300)
    assert outcome["status"] == "partial", (tmp_path / "worker.log").read_text()[-3000:]
    assert outcome["entries"] == 50 and outcome["failed"] == 5
    with deps.session() as s:
        statuses = dict(s.execute(select(RunItem.entry_id, RunItem.status)).all())
        failed_matches = s.scalar(select(func.count()).select_from(KnowledgeSopMatch).where(KnowledgeSopMatch.action == "failed"))
    assert {str(e) for e, st in statuses.items() if st == "failed"} == set(failing)
    assert sum(st in ("enriched", "redundant", "orphaned", "deferred") for st in statuses.values()) == 45
    assert failed_matches == 5
    # the callback ran and made exactly one commit on top of the old head
    log = subprocess.run(["git", "-C", str(settings.playbook_path), "log", "--format=%H %P", "-2"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert outcome["commit_sha"] and log[0].split() == [outcome["commit_sha"], head]
