"""The run in-process on real PostgreSQL+pgvector and a real git repository."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from playbook_sync import lifecycle, pipeline, store
from playbook_sync.models import InsertedCallout, RunItem, SopEmbedding, SyncRun
from playbook_sync.schemas import ItemStatus
from playbook_sync.sops import parse_sop
from tests.support import FailingLLM, entry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)
COLD_EMAIL = "Cold email subject lines that name the competitor doubled opens; keep the subject short."


def add(deps, *entries):
    with deps.session() as s:
        store.upsert_entries(s, entries=list(entries))
    return [e.id for e in entries]


def items(deps, run_id):
    with deps.session() as s:
        return {i.entry_id: i.status for i in s.scalars(select(RunItem).where(RunItem.run_id == run_id))}


def commits(deps) -> int:
    out = subprocess.run(["git", "-C", str(deps.settings.playbook_path), "rev-list", "--count", deps.settings.branch],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_every_entry_without_an_outcome_is_owed_whatever_its_created_at(deps):
    """Issue 9 item 3: the client's date never decides whether an entry is processed."""
    add(deps, entry(COLD_EMAIL, created_at=T0 + timedelta(days=1)))
    run1 = pipeline.run_inline(deps, now=T0 + timedelta(days=7))
    assert run1["status"] == "success" and run1["entries"] == 1
    late = add(deps, entry("A late note about discovery call agendas.", created_at=T0 + timedelta(days=2)))
    fresh = add(deps, entry("Discovery calls go better with a written agenda sent the day before.", created_at=T0 + timedelta(days=9)))
    future = add(deps, entry("Pricing anchors should be shown first.", created_at=T0 + timedelta(days=30)))
    run2 = pipeline.run_inline(deps, now=T0 + timedelta(days=14))
    second = items(deps, run2["run_id"])
    assert set(second) == set(late + fresh + future)  # not `first`: it has its outcome
    assert not set(second.values()) & {ItemStatus.failed, ItemStatus.pending}
    with deps.session() as s:
        run = s.get(SyncRun, run2["run_id"])
        assert (run.window_start, run.window_end) == (T0 + timedelta(days=7), T0 + timedelta(days=14))  # bookkeeping
    run3 = pipeline.run_inline(deps, now=T0 + timedelta(days=21))
    assert run3["entries"] == 0 and items(deps, run3["run_id"]) == {}  # each has its outcome: nothing twice


def test_back_dated_entry_ingested_after_a_run_is_processed_by_the_next(deps, tmp_path):
    """The reported case, on the real clock: ingest, run, ingest a late export dated yesterday, run."""
    from playbook_sync.ingest import parse_jsonl

    def ingest(*lines: dict) -> None:
        parsed = parse_jsonl(b"\n".join(json.dumps(line).encode() for line in lines), "export.jsonl")
        assert not parsed.errors
        with deps.session() as s:
            assert store.upsert_entries(s, entries=parsed.entries) == len(lines)  # "1 new entries"

    yesterday = datetime.now(UTC) - timedelta(days=1)
    ingest({"category": "insight", "content": COLD_EMAIL, "transcript_type": "sales"})
    run1 = pipeline.run_inline(deps)
    assert run1["status"] == "success" and run1["entries"] == 1
    late_id = str(uuid.uuid4())
    ingest({"id": late_id, "category": "question", "transcript_type": "coaching", "created_at": yesterday.isoformat(),
            "content": "Prospects keep asking whether the discovery call agenda can be sent the day before."})
    run2 = pipeline.run_inline(deps)
    second = items(deps, run2["run_id"])
    assert set(map(str, second)) == {late_id} and second[uuid.UUID(late_id)] in (
        ItemStatus.enriched, ItemStatus.redundant, ItemStatus.orphaned)


def test_failed_run_does_not_advance_window_and_partial_does(deps):
    ids = add(deps, *(entry(f"{COLD_EMAIL} Variant {i}.", created_at=T0 + timedelta(hours=i)) for i in range(4)))
    with deps.session() as s:
        started = pipeline.start_run(s, deps, now=T0 + timedelta(days=7))
    with deps.session() as s:
        lifecycle.fail_run(s, run_id=started.run_id, error="worker lost", repo=deps.repo)
    with deps.session() as s:
        assert store.last_window_end(s) is None  # failed: the window stays where it was
    assert set(items(deps, started.run_id).values()) == {ItemStatus.failed}

    deps.llm = FailingLLM({str(ids[0])})
    run2 = pipeline.run_inline(deps, now=T0 + timedelta(days=8))
    assert run2["status"] == "partial" and run2["failed"] == 1 and run2["entries"] == 4
    with deps.session() as s:
        assert store.last_window_end(s) == T0 + timedelta(days=8)  # partial advances it

    deps.llm = FailingLLM(set())
    run3 = pipeline.run_inline(deps, now=T0 + timedelta(days=9))
    third = items(deps, run3["run_id"])
    assert set(third) == {ids[0]}  # the failed entry is owed even though the window moved
    assert third[ids[0]] != ItemStatus.failed and run3["status"] == "success"


def test_deferred_entries_are_processed_by_the_next_run(deps):
    deps.settings.max_enrichments_per_sop = 1
    texts = [
        "Cold email subject lines naming the prospect's competitor got twice the opens.",
        "Cold email opening lines that mention a recent hire get more replies than compliments.",
        "Cold email with a single case study number in the second line beats a list of logos.",
    ]
    add(deps, *(entry(t, created_at=T0 + timedelta(hours=i)) for i, t in enumerate(texts)))
    run1 = pipeline.run_inline(deps, now=T0 + timedelta(days=7))
    first = items(deps, run1["run_id"])
    deferred = {e for e, s in first.items() if s == ItemStatus.deferred}
    assert run1["enriched"] >= 1 and deferred, first
    run2 = pipeline.run_inline(deps, now=T0 + timedelta(days=8))
    assert deferred <= set(items(deps, run2["run_id"]))
    with deps.session() as s:
        written = [e for c in s.scalars(select(InsertedCallout)) for e in c.entry_ids]
    assert len(written) == len(set(written))  # no entry written twice anywhere


def test_sop_embedding_cache(deps):
    embedder = deps.embedder
    pipeline.run_inline(deps, now=T0)
    assert embedder.calls == 1  # all SOPs (whole + sections) in one request, no entries
    pipeline.run_inline(deps, now=T0 + timedelta(days=1))
    assert embedder.calls == 1  # unchanged repository: 0 SOP embedding calls

    repo = deps.repo
    head = repo.head()
    tree = repo.read_tree("docs", head)
    path = "docs/sops/module-3/sop-3-2-handle-objections.md"
    removed = "docs/sops/module-1/sop-1-3-price-and-package-your-services.md"
    files = {path: tree[path] + b"\nOne more line about objections.\n", removed: None}
    repo.commit(files, "edit one SOP, delete another", parent=head)
    before = embedder.inputs
    pipeline.run_inline(deps, now=T0 + timedelta(days=2))
    assert embedder.calls == 2  # exactly one call for the one changed SOP
    with deps.session() as s:
        rows = {r.file_path: r for r in s.scalars(select(SopEmbedding))}
    assert removed not in rows and path in rows
    changed = parse_sop(path, repo.read_tree("docs")[path])
    assert embedder.inputs - before == 1 + len(changed.sections)  # whole file + its sections


def test_finalize_again_adds_no_commit_and_no_block(deps):
    add(deps, entry(COLD_EMAIL, created_at=T0))
    with deps.session() as s:
        started = pipeline.start_run(s, deps, now=T0 + timedelta(days=1))
    for e in started.entry_ids:
        with deps.session() as s:
            pipeline.process_entry(s, deps, run_id=started.run_id, entry_id=e)
    before = commits(deps)
    with deps.session() as s:
        first = pipeline.finalize_run(s, deps, run_id=started.run_id)
    assert first["commit_sha"] and commits(deps) == before + 1
    # A redelivered callback that lost its DB write: the trailer is found, nothing is redone.
    with deps.session() as s:
        run = s.get(SyncRun, started.run_id)
        run.status, run.commit_sha = "running", None
        s.execute(InsertedCallout.__table__.update().values(commit_sha=None))
    with deps.session() as s:
        again = pipeline.finalize_run(s, deps, run_id=started.run_id)
    assert again["commit_sha"] == first["commit_sha"] and commits(deps) == before + 1
    with deps.session() as s:
        assert all(c.commit_sha == first["commit_sha"] for c in s.scalars(select(InsertedCallout)))


def test_redelivered_process_entry_repeats_no_call_and_no_row(deps):
    from playbook_sync.models import KnowledgeSopMatch

    add(deps, entry(COLD_EMAIL, created_at=T0))
    with deps.session() as s:
        started = pipeline.start_run(s, deps, now=T0 + timedelta(days=1))
    before = deps.llm.calls["classify"]
    for _ in range(3):  # the broker hands the same message over again
        with deps.session() as s:
            pipeline.process_entry(s, deps, run_id=started.run_id, entry_id=started.entry_ids[0])
    assert deps.llm.calls["classify"] - before == 1
    with deps.session() as s:
        rows = s.scalars(select(KnowledgeSopMatch).where(KnowledgeSopMatch.sync_run_id == started.run_id)).all()
        item = s.get(RunItem, (started.run_id, started.entry_ids[0]))
    assert len(rows) == len({r.sop_file_path for r in rows}) >= 1 and item.attempts == 1


def test_a_second_finalize_of_the_same_run_waits_its_turn(deps):
    from sqlalchemy import text

    add(deps, entry(COLD_EMAIL, created_at=T0))
    with deps.session() as s:
        started = pipeline.start_run(s, deps, now=T0 + timedelta(days=1))
    with deps.session() as s:
        pipeline.process_entry(s, deps, run_id=started.run_id, entry_id=started.entry_ids[0])
    key = {"k": started.run_id.int & 0x7FFF_FFFF_FFFF_FFFF}
    with deps.session() as other, other.get_bind().connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), key)  # a first finalize is working
        busy = pipeline.finalize_run(other, deps, run_id=started.run_id)  # a duplicate callback meanwhile
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), key)
    assert busy["status"] == "running" and "busy" in busy
    assert commits(deps) == 1  # the duplicate wrote nothing
    with deps.session() as s:
        done = pipeline.finalize_run(s, deps, run_id=started.run_id)
    assert done["status"] == "success" and commits(deps) == 2
