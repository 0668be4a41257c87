"""Task-level retries on a real worker: an entry whose provider calls keep failing transiently is
retried by its task (after the call's own retries ran out), and gives up after TASK_MAX_RETRIES."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import demo, store
from playbook_sync.models import RunItem
from playbook_sync.worker.app import app
from playbook_sync.worker.local import task_result, wait_for_run, worker_process
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.wiring import worker_env as anthropic_env
from tests.integration.test_faults import worker_env
from tests.runs import summarize

pytestmark = pytest.mark.integration


def one_enriching_entry(now: datetime):
    routing = json.loads((demo.HERE / "expected_routing.json").read_text())
    return next(e for e in demo.entries(now) if routing[str(e.id)]["outcome"] == "enrich")


def classify_calls(fake: FakeAnthropic) -> int:
    return sum(1 for body in fake.bodies("/v1/messages") if (body or {}).get("tool_choice", {}).get("name") == "record_classification")


def run_one(deps, settings, tmp_path, *, failures: int, task_retries: int) -> tuple[dict, RunItem, int, str]:
    """One entry, its classify call failing with 529 `failures` times; (outcome, item, classify calls, worker log)."""
    entry = one_enriching_entry(datetime.now(UTC))
    with deps.session() as s:
        store.upsert_entries(s, entries=[entry])
    log = tmp_path / "worker.log"
    with FakeAnthropic() as fake:
        # Two attempts per call (one provider retry), then the task's own retries, 0.1 s apart at first.
        env = worker_env(settings) | anthropic_env(fake) | {
            "PLAYBOOK_SYNC_LLM_MAX_RETRIES": "1", "PLAYBOOK_SYNC_TASK_MAX_RETRIES": str(task_retries),
            "PLAYBOOK_SYNC_TASK_RETRY_BACKOFF": "0.1"}
        fake.fail_next("/v1/messages", 529, count=failures)  # only the classify call comes before finalize
        with worker_process(app, env=env, concurrency=1, log_file=log, name="retries"):
            from playbook_sync.worker.tasks import start_run

            run_id = uuid.UUID(task_result(start_run.delay(trigger="test"), timeout=60, poll=0.2)["run_id"])
            outcome = wait_for_run(settings.database_url, run_id, timeout=120, poll=0.2, summarize=summarize)
        calls = classify_calls(fake)
    with deps.session() as s:
        item = s.scalars(select(RunItem).where(RunItem.run_id == run_id)).one()
        s.expunge(item)
    return outcome, item, calls, log.read_text()


def test_an_outage_longer_than_the_calls_retries_is_retried_by_the_task(deps, settings, redis_url, tmp_path):
    # 4 failures = two task attempts of two calls each; the third task attempt gets through.
    outcome, item, calls, log = run_one(deps, settings, tmp_path, failures=4, task_retries=3)
    assert calls == 5, log[-3000:]  # 2 + 2 failed, then the answer
    assert log.count("process_entry[") and log.count(" retry: Retry in ") == 2, log[-3000:]
    assert item.status == "enriched" and item.error is None
    assert outcome["status"] == "success" and outcome["enriched"] == 1 and outcome["commit_sha"]


def test_the_task_gives_up_after_its_retries_and_records_why(deps, settings, redis_url, tmp_path):
    outcome, item, calls, log = run_one(deps, settings, tmp_path, failures=100, task_retries=1)
    assert calls == 4, log[-3000:]  # two task attempts of two calls each, then no more
    assert log.count(" retry: Retry in ") == 1, log[-3000:]
    assert item.status == "failed" and item.error.startswith("gave up after 2 attempts: Anthropic classify call failed after 2 attempts")
    assert outcome["failed"] == 1 and outcome["commit_sha"] is None
