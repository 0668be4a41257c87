"""Batch mode: a run's classifications as one Message Batch, polled, applied, resumed after restarts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import batch, demo, pipeline, store
from playbook_sync.models import KnowledgeSopMatch, LlmCall, RunItem, SyncRun
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.wiring import real_deps, worker_env
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def prepare_run(d, entries) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Start a run and process its entries (batch mode: requests stored, no model calls)."""
    with d.session() as s:
        store.upsert_entries(s, entries=entries)
    with d.session() as s:
        started = pipeline.start_run(s, d)
    for entry_id in started.entry_ids:
        with d.session() as s:
            pipeline.process_entry(s, d, run_id=started.run_id, entry_id=entry_id)
    with d.session() as s:
        prepared = [i.entry_id for i in s.scalars(select(RunItem).where(RunItem.run_id == started.run_id,
                                                                      RunItem.prepared.is_not(None)))]
    return started.run_id, prepared


def finalize(d, run_id) -> dict:
    with d.session() as s:
        return pipeline.finalize_run(s, d, run_id=run_id)


def poll(d) -> list[uuid.UUID]:
    with d.session() as s:
        return batch.poll(s, d.llm, d.ledger)


def test_batch_is_submitted_once_polled_and_resumed_after_a_restart(deps):
    with FakeAnthropic(batch_polls=1) as fake:
        d = real_deps(deps, fake, None, llm_batch=True)
        run_id, prepared = prepare_run(d, demo.entries(datetime.now(UTC)))
        assert len(prepared) >= 10 and fake.posts("/v1/messages") == []  # nothing classified yet

        first = finalize(d, run_id)  # the chord callback submits the batch and returns
        assert first["status"] == "running" and first["batch_id"]
        assert finalize(d, run_id)["batch_id"] == first["batch_id"]  # a redelivered callback: no second batch
        submitted = fake.bodies("/v1/messages/batches")[0]["requests"]
        assert sorted(r["custom_id"] for r in submitted) == sorted(str(e) for e in prepared)
        params = submitted[0]["params"]
        assert params["tools"][0]["name"] == "record_classification" and params["tools"][0]["strict"] is True
        assert params["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert "The whole SOP:\n# " in params["messages"][0]["content"][0]["text"]  # the SOP text was re-read for the batch

        assert poll(d) == []  # in_progress
        with d.session() as s:
            assert s.get(SyncRun, run_id).batch_status == "in_progress"
        restarted = real_deps(deps, fake, None, llm_batch=True)  # a new process: new client, nothing in memory
        assert poll(restarted) == [run_id]  # ended: results applied
        assert poll(restarted) == []  # applied once
        done = finalize(restarted, run_id)
        assert done["status"] == "success" and done["enriched"] > 0
        assert fake.count("POST", "/v1/messages/batches") == 1
        direct = [b for b in fake.posts("/v1/messages") if b["tools"][0]["name"] == "record_classification"]
        assert direct == []  # every classification came from the batch

    with deps.session() as s:
        matches = s.scalars(select(KnowledgeSopMatch).where(KnowledgeSopMatch.sync_run_id == run_id)).all()
        calls = s.scalars(select(LlmCall).where(LlmCall.run_id == run_id, LlmCall.step == "classify")).all()
        items = {i.entry_id: i for i in s.scalars(select(RunItem).where(RunItem.run_id == run_id))}
    assert {m.knowledge_entry_id for m in matches if m.sop_file_path} == set(prepared)  # mapped back by custom id
    assert all(items[e].prepared is None and items[e].status in ("enriched", "deferred") for e in prepared)
    assert len(calls) == len(prepared) and all(c.batch for c in calls)
    assert {c.entry_id for c in calls} == set(prepared)
    opus = d.settings.prices["claude-opus-4-6"]
    c = calls[0]
    full = (c.input_tokens * opus.input + c.output_tokens * opus.output + c.cache_write_tokens * opus.cache_write
            + c.cache_read_tokens * opus.cache_read) / 1e6
    assert c.cost_usd == pytest.approx(full / 2)  # batch price


def test_failed_batch_results_fall_back_to_one_direct_call(deps):
    with FakeAnthropic(batch_polls=0) as fake:
        d = real_deps(deps, fake, None, llm_batch=True)
        run_id, prepared = prepare_run(d, demo.entries(datetime.now(UTC)))
        overloaded = {"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error",
                                                                             "message": "Overloaded"}}}
        for entry_id in prepared[:2]:
            fake.batch_overrides[str(entry_id)] = overloaded
        finalize(d, run_id)
        fake.fail_next("/v1/messages", 400, method="POST")  # the first direct retry is refused as well
        assert poll(d) == [run_id]
        assert len(fake.posts("/v1/messages")) == 2  # one direct call per errored result
        done = finalize(d, run_id)
    assert done["status"] == "partial" and done["failed"] == 1
    with deps.session() as s:
        failed = s.scalars(select(RunItem).where(RunItem.run_id == run_id, RunItem.status == "failed")).one()
    assert failed.entry_id in prepared[:2]
    assert "batch request errored: Overloaded" in failed.error and "direct call" in failed.error


def batch_id(d, run_id) -> str | None:
    with d.session() as s:
        return s.get(SyncRun, run_id).batch_id


def test_a_worker_restart_between_polls_resumes_without_resubmitting(deps, settings, redis_url, tmp_path):
    from playbook_sync.lifecycle import summary
    from playbook_sync.worker.app import app
    from playbook_sync.worker.local import task_result, wait_for_run, worker_process
    from playbook_sync.worker.tasks import poll_batches, start_run

    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with FakeAnthropic(batch_polls=1) as fake:
        env = {"PLAYBOOK_SYNC_DATABASE_URL": settings.database_url, "PLAYBOOK_SYNC_BROKER_URL": settings.broker_url,
               "PLAYBOOK_SYNC_REPO_PATH": str(settings.playbook_path), "PLAYBOOK_SYNC_DATA_DIR": str(settings.data_dir),
               **worker_env(fake, batch=True)}
        log = tmp_path / "worker.log"
        with worker_process(app, env=env, log_file=log, name="batch-a"):
            run_id = uuid.UUID(task_result(start_run.delay(trigger="test"), timeout=120, poll=0.2)["run_id"])
            # The batch id committed on the run, not only the fake's POST: a poll before that commit sees no batch
            # (and asks the fake nothing), so the next worker's poll would be the first, still in progress.
            wait_for(lambda: batch_id(deps, run_id), 120, "the chord callback to record the batch", poll=0.2,
                     detail=lambda: log.read_text()[-3000:])
            assert task_result(poll_batches.delay(), timeout=60, poll=0.2) == {"finalizing": []}  # in_progress
            assert fake.count("GET", "/v1/messages/batches/") == 1
        with worker_process(app, env=env, log_file=log, name="batch-b"):  # a new worker process
            assert task_result(poll_batches.delay(), timeout=60, poll=0.2) == {"finalizing": [str(run_id)]}
            outcome = wait_for_run(settings.database_url, run_id, timeout=120, poll=0.2, summarize=summary)
        assert outcome["status"] == "success", log.read_text()[-3000:]
        assert fake.count("POST", "/v1/messages/batches") == 1 and outcome["batch_id"]
        # polls: in_progress, ended; then the SDK reads results_url (a retrieve) and the results
        assert fake.count("GET", "/v1/messages/batches/") == 4


def test_batch_polling_is_scheduled_in_batch_mode_only():
    from playbook_sync.config import Settings
    from playbook_sync.worker.schedule import beat_schedule

    assert "poll-batches" not in beat_schedule(Settings(_env_file=None))
    entry = beat_schedule(Settings(_env_file=None, llm_batch=True, batch_poll_seconds=120))["poll-batches"]
    assert entry["task"] == "playbook_sync.poll_batches" and entry["schedule"] == 120.0
