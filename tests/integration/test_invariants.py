"""DESIGN §2 as a property: after any sequence of ingest / run / kill-a-run / rerun over a real
database and a real local git playbook, nothing is lost and nothing is written twice.

Promises checked after every step (and a last rerun that settles what is owed):
- every run that took an entry records exactly one final outcome for it once the run ended;
- an entry no run has settled is owed: after the last rerun every ingested entry was taken by a
  run and its latest outcome is not `failed` (back-dated entries included: DESIGN §1);
- no callout block appears twice in any SOP, and no entry's block appears in two blocks of one
  SOP, read from the files themselves (entries carry a marker into their block's text);
- at most one commit per run, each carrying its own run's trailer.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from playbook_sync import db, demo, pipeline, store
from playbook_sync.config import Settings
from playbook_sync.deps import Deps
from playbook_sync.models import InsertedCallout, RunItem, SyncRun
from playbook_sync.providers.localgit import init_repo
from playbook_sync.schemas import FINAL_ITEM_STATUSES
from tests import runs
from tests.blocks import MARKER, duplicate_blocks, tagged
from tests.conftest import TEMPLATE, _admin_sql

pytestmark = pytest.mark.integration
ENDED = {s.value for s in FINAL_ITEM_STATUSES} | {"deferred", "failed"}  # an item's outcome once its run ended
POOL = demo.entries(datetime(2026, 1, 1, tzinfo=UTC))

INGEST = st.tuples(st.just("ingest"), st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=8, unique=True),
                   st.booleans())  # (op, which sample entries, back-dated before every window so far)
RUN = st.tuples(st.just("run"))
KILL = st.tuples(st.just("kill"), st.integers(0, 6))  # (op, entries processed before the run dies)
LATE_KILL = st.tuples(st.just("kill_after_commit"))  # dies once its commit landed, before its bookkeeping
STEPS = st.lists(st.one_of(INGEST, RUN, KILL, LATE_KILL), min_size=1, max_size=5)


class World:
    """One example's database (from the migrated template) and playbook repository."""

    def __init__(self, socket_dir: str) -> None:
        self.socket_dir, self.name = socket_dir, f"p_{uuid.uuid4().hex[:12]}"
        _admin_sql(socket_dir, f'CREATE DATABASE "{self.name}" TEMPLATE "{TEMPLATE}"')
        self.tmp = Path(tempfile.mkdtemp(prefix="playbook-sync-inv-"))
        cfg = Settings(_env_file=None, database_url=db_url(socket_dir, self.name), data_dir=self.tmp / "data",
                       repo_path=self.tmp / "playbook")
        init_repo(cfg.playbook_path, demo.playbook_files(), branch=cfg.branch)
        self.deps = Deps.from_settings(cfg)
        self.ingested: set[uuid.UUID] = set()
        self.marker = 0

    def close(self) -> None:
        db.get_engine(self.deps.settings.database_url).dispose()
        _admin_sql(self.socket_dir, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ingest(self, picks: list[int], backdated: bool) -> None:
        when = datetime(2020, 1, 1, tzinfo=UTC) if backdated else datetime.now(UTC)
        fresh = []
        for i in picks:
            self.marker += 1
            fresh.append(POOL[i].model_copy(update={"id": uuid.uuid4(), "created_at": when,
                                                    "content": tagged(POOL[i].content, self.marker)}))
        with self.deps.session() as s:
            store.upsert_entries(s, entries=fresh)
        self.ingested |= {e.id for e in fresh}

    def run(self) -> None:
        pipeline.run_inline(self.deps)

    def kill(self, processed: int) -> None:
        """A run whose worker dies after `processed` entries; the watchdog (or the CLI) fails it."""
        with self.deps.session() as s:
            started = pipeline.start_run(s, self.deps)
        for entry_id in started.entry_ids[:processed]:
            with self.deps.session() as s:
                pipeline.process_entry(s, self.deps, run_id=started.run_id, entry_id=entry_id)
        runs.fail_run(self.deps, started.run_id, "test: worker killed mid-run")

    def kill_after_commit(self) -> None:
        """A run that dies in finalize after its commit landed; the run is then failed (DESIGN §2.8)."""
        with self.deps.session() as s:
            started = pipeline.start_run(s, self.deps)
        for entry_id in started.entry_ids:
            with self.deps.session() as s:
                pipeline.process_entry(s, self.deps, run_id=started.run_id, entry_id=entry_id)
        with runs.dies_after_the_commit():
            runs.finalize_or_fail(self.deps, started.run_id)

    def check(self, *, settled: bool) -> None:
        deps = self.deps
        with deps.session() as s:
            all_runs = list(s.scalars(select(SyncRun).order_by(SyncRun.run_at)))
            items = s.execute(select(RunItem.run_id, RunItem.entry_id, RunItem.status)
                              .join(SyncRun, SyncRun.id == RunItem.run_id).order_by(SyncRun.run_at)).all()
            pairs = Counter((c.sop_file_path, e) for c in s.scalars(select(InsertedCallout)) for e in c.entry_ids)
            shas = {r.id: r.commit_sha for r in all_runs}
        assert all(r.status != "running" for r in all_runs), "a run was left running"
        # One final outcome per (run, entry): the row is unique by key; its status must be an ending.
        unended = [(str(r), str(e), st_) for r, e, st_ in items if st_ not in ENDED]
        assert not unended, f"items without a final outcome in an ended run: {unended[:5]}"
        assert not [p for p, n in pairs.items() if n > 1], "an entry recorded twice in one SOP"
        tree = deps.repo.read_tree(deps.settings.docs_root)
        assert duplicate_blocks(tree) == []
        # At most one commit per run, and each with that run's trailer.
        log = subprocess.run(["git", "-C", str(deps.settings.playbook_path), "log", "--format=%H %(trailers:key=Playbook-Sync-Run,valueonly,separator=)", "main"],
                             capture_output=True, text=True, check=True).stdout.split("\n")
        ours = [line.split() for line in log if len(line.split()) == 2]
        twice = [run for run, n in Counter(run for _, run in ours).items() if n > 1]
        assert not twice, f"all_runs with more than one commit: {twice}"
        # Known defect on main (issue 9 item 7): a run failed after its commit landed does not adopt it.
        unrecorded = {sha for sha, _ in ours} - {v for v in shas.values() if v}
        assert not unrecorded, f"commits that landed but no run records (not adopted, DESIGN §2.8): {unrecorded}"
        assert all(shas.get(uuid.UUID(run)) == sha for sha, run in ours), "a commit recorded on another run"
        if settled:
            latest = {e: st_ for _, e, st_ in items}
            never_taken = self.ingested - set(latest)
            # Known defect on main (issue 9 item 3): a back-dated entry is ingested but no run takes it.
            assert not never_taken, f"{len(never_taken)} ingested entries were never taken by any run"
            failed = [e for e in self.ingested if latest[e] == "failed"]
            assert not failed, f"{len(failed)} entries still failed after a clean rerun"
            if "enriched" in latest.values():  # the file checks above saw the entries' markers
                assert any(MARKER.search(raw.decode()) for raw in tree.values())


@pytest.fixture(scope="module")
def socket_dir(pg_socket) -> str:
    return pg_socket


def db_url(socket_dir: str, name: str) -> str:
    from playbook_sync.local_services import postgres_url

    return postgres_url(socket_dir, name)


@given(steps=STEPS)
@example(steps=[("ingest", list(range(12)), False), ("kill", 3), ("ingest", list(range(12, 20)), False), ("run",),
                ("kill", 0), ("ingest", [20, 21, 22], True)])
# No shrinking: each example is a few real runs; the failing sequence is reported as generated.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
          phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
def test_any_sequence_of_ingest_run_kill_rerun_keeps_the_promises(socket_dir, steps):
    world = World(socket_dir)
    try:
        for step in steps:
            getattr(world, step[0])(*step[1:])
            world.check(settled=False)
        world.run()  # the rerun that settles whatever is owed
        world.check(settled=True)
    finally:
        world.close()
