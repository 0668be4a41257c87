"""`enqueue entries|window|run` on a real worker: each processes exactly the entries it names."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from playbook_sync import lifecycle, pipeline, store
from playbook_sync.cli import app as cli_app
from playbook_sync.config import get_settings
from playbook_sync.models import InsertedCallout, RunItem, SyncRun
from playbook_sync.worker.app import app
from playbook_sync.worker.local import worker_process
from tests.integration.test_worker import worker_env
from tests.support import entry

pytestmark = pytest.mark.integration
TEXTS = [
    "On discovery calls, asking the prospect to rank their three biggest revenue problems by cost made the budget question easy.",
    "Proposals sent within two hours of the discovery call closed noticeably faster than ones sent the next day.",
    "LinkedIn connection requests without a note were accepted more often than ones with a pitch in the note.",
    "Follow-up emails that added a new case study each time got more replies than plain bump emails.",
    "Cold emails that named the prospect's main competitor in the subject line got twice the opens.",
    "Prospects who raised the price objection relaxed once we compared our retainer to the cost of one bad sales hire.",
]


def commits(repo) -> int:
    return int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "main"], capture_output=True, text=True, check=True).stdout)


def test_each_enqueue_form_processes_exactly_what_it_names(deps, settings, redis_url, monkeypatch, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    day = lambda n: now - timedelta(days=n)
    entries = [entry(text, created_at=day(6 - i), source=f"call-{i}") for i, text in enumerate(TEXTS)]  # days -6..-1
    ids = [e.id for e in entries]
    with deps.session() as s:
        store.upsert_entries(s, entries=entries[:3])
    # A weekly run over (start, day -3.5] that failed: its entries are 0, 1, 2 (all it was owed).
    with deps.session() as s:
        failed = pipeline.start_run(s, deps, trigger="schedule", now=day(3.5))
    with deps.session() as s:
        lifecycle.fail_run(s, run_id=failed.run_id, error="finalize failed: GitHub was down", repo=deps.repo)
    assert failed.entry_ids == ids[:3]
    with deps.session() as s:
        store.upsert_entries(s, entries=entries[3:])

    for key, value in worker_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()

    def enqueue(*args: str) -> tuple[set[uuid.UUID], SyncRun]:
        result = CliRunner().invoke(cli_app, ["enqueue", *args, "--wait"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        with deps.session() as s:
            run = s.scalars(select(SyncRun).order_by(SyncRun.run_at.desc()).limit(1)).one()
            items = set(s.scalars(select(RunItem.entry_id).where(RunItem.run_id == run.id)))
            s.expunge(run)
        assert run.status == "success" and run.id != failed.run_id, result.output
        return items, run

    def watermark():
        with deps.session() as s:
            return store.last_window_end(s)

    try:
        with worker_process(app, env=worker_env(settings), log_file=tmp_path / "worker.log"):
            before = commits(settings.playbook_path)
            items, run = enqueue("entries", str(ids[1]), str(ids[4]))
            assert items == {ids[1], ids[4]} and run.trigger == "adhoc:entries"
            assert commits(settings.playbook_path) == before + 1 and watermark() is None  # one commit; window stays

            with deps.session() as s:
                blocks = s.scalar(select(func.count()).select_from(InsertedCallout))
            items, run = enqueue("entries", str(ids[1]), str(ids[4]))  # again: nothing twice
            assert items == {ids[1], ids[4]} and run.commit_sha is None
            with deps.session() as s:
                assert s.scalar(select(func.count()).select_from(InsertedCallout)) == blocks

            items, run = enqueue("window", "--since", day(4.5).isoformat(), "--until", day(2.5).isoformat())
            assert items == {ids[2], ids[3]} and run.trigger == "adhoc:window" and watermark() is None

            items, run = enqueue("run", str(failed.run_id)[:8])
            assert items == set(ids[:3]) and run.trigger == "enqueue:run"
            # Contiguous with the (empty) processed past: the weekly window now starts after it.
            assert watermark() == day(3.5)

            refused = CliRunner().invoke(cli_app, ["enqueue", "entries", str(uuid.uuid4())])
            assert refused.exit_code == 1 and "unknown knowledge entries" in refused.output
    finally:
        get_settings.cache_clear()
    # The next weekly run owes only what no run settled: entry 5 (by outcome, not by dates).
    with deps.session() as s:
        assert store.owed_entry_ids(s) == [ids[5]]
