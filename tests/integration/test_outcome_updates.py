"""F10/F11: one current `Results From the Field` aggregate per SOP, and an editor's deletion is not undone.

DESIGN §2b: one aggregate callout per SOP, updated additively as evidence grows. A newer aggregate
replaces ours in place (the only removal a run makes, of a block of ours still as we wrote it); an
aggregate an editor removed holds the SOP's aggregate; a restatement of a callout an editor removed
is held for review, not written back. Real runs, real git, real PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import demo, pipeline, reports, store
from playbook_sync.callouts import check_additive
from playbook_sync.models import InsertedCallout, RunItem, SyncRun
from playbook_sync.models_learning import CalloutState
from playbook_sync.reports import ReportIn, Stored
from playbook_sync.retire import retire_blocks
from playbook_sync.schemas import EntryIn
from tests.integration.test_learning import edit_by_hand, git

pytestmark = pytest.mark.integration

COLD = "docs/sops/module-2/sop-2-1-write-cold-email-copy.md"
OBJECTIONS = "docs/sops/module-3/sop-3-2-handle-objections.md"
AGGREGATE = ":::note Results From the Field\nAcross "  # entry-based Results callouts do not open with "Across"


def ingest(deps, items: list[ReportIn]) -> None:
    with deps.session() as s:
        reports.store_reports(s, deps.embedder, [(i, b"", r) for i, r in enumerate(items, 1)], "test", Stored())


def sprint(prefix: str, n: int, before: float, after: float, now: datetime) -> list[ReportIn]:
    """n completed cold-email-sprint reports with one NPS outcome each (the tester's ev.jsonl shape)."""
    return [ReportIn(report_id=f"{prefix}-{i}", customer_id="cust-ev", account_id=f"acct-{prefix}-{i}",
                     playbook_id="cold-email-sprint", status="completed", completed_at=now,
                     report_data={"executive_summary": "Evidence bump",
                                  "outcomes_achieved": [{"metric": "NPS", "before": before, "after": after}]})
            for i in range(n)]


def text_of(deps, path: str, sha: str | None = None) -> str:
    return deps.repo.read_tree(deps.settings.docs_root, sha or deps.repo.head())[path].decode()


def aggregates(text: str) -> list[str]:
    """The aggregate blocks of an SOP's text, as written."""
    out, rest = [], text
    while (at := rest.find(AGGREGATE)) >= 0:
        end = rest.index("\n:::\n", at) + 5
        out.append(rest[at:end])
        rest = rest[end:]
    return out


def drop(block: str):
    return lambda text: text.replace(block, "").replace("\n\n\n", "\n\n")


def states_of(deps, path: str) -> dict[str, str]:
    """block → its survival state, for the aggregates of one SOP."""
    with deps.session() as s:
        return {c.block: st.state for c, st in s.execute(select(InsertedCallout, CalloutState).join(
            CalloutState, CalloutState.callout_id == InsertedCallout.id).where(
            InsertedCallout.sop_file_path == path, InsertedCallout.block.like(f"{AGGREGATE}%")))}


def test_materially_changed_evidence_replaces_the_aggregate_in_place_run_after_run(deps):
    now = datetime.now(UTC)
    ingest(deps, demo.reports(now))
    assert pipeline.run_inline(deps)["status"] == "success"
    (first,) = aggregates(text_of(deps, COLD))

    ingest(deps, sprint("ev", 9, 25, 40, now))  # a new metric (NPS): a material change
    base = deps.repo.head()
    second_run = pipeline.run_inline(deps)
    before, after = text_of(deps, COLD, base), text_of(deps, COLD)
    (second,) = aggregates(after)  # one aggregate, the newer one, where the first was
    assert second != first and "Across 13 executions" in second and "NPS rose a median 15 points (25 → 40)" in second
    # Honest additivity: the file without our earlier block, plus callout blocks, nothing else changed.
    assert check_additive(retire_blocks(before, [first]), after) is None and check_additive(before, after) is not None
    assert after.index(second) == before.index(first)  # same section, same place
    with deps.session() as s:
        assert "replaces the earlier aggregate" in s.get(SyncRun, second_run["run_id"]).commit_message

    ingest(deps, sprint("ev2", 6, 10, 80, now))  # NPS moves again: the tester's second batch
    pipeline.run_inline(deps)
    (third,) = aggregates(text_of(deps, COLD))
    assert "Across 19 executions" in third and third not in (first, second)
    assert all(len(aggregates(t.decode())) <= 1 for t in deps.repo.read_tree(deps.settings.docs_root).values())

    pipeline.run_inline(deps)  # the learning loop: ours replaced, not an editor's decline
    states = states_of(deps, COLD)
    assert (states[first], states[second], states[third]) == ("replaced", "replaced", "kept")


def test_an_aggregate_an_editor_deleted_is_not_written_back_until_they_put_it_back(deps):
    now = datetime.now(UTC)
    ingest(deps, demo.reports(now))
    pipeline.run_inline(deps)
    (written,) = aggregates(text_of(deps, COLD))
    edit_by_hand(deps, COLD, drop(written))
    removed_at = deps.repo.head()

    ingest(deps, sprint("ev", 9, 25, 40, now))  # evidence that would write a new aggregate
    held = pipeline.run_inline(deps)
    assert aggregates(text_of(deps, COLD)) == []
    assert f"{COLD}: Results From the Field held" in _log(deps, held["run_id"])
    assert states_of(deps, COLD)[written] == "declined"
    ingest(deps, sprint("ev2", 6, 10, 80, now))
    pipeline.run_inline(deps)
    assert aggregates(text_of(deps, COLD)) == []  # still held: more evidence does not overrule the editor

    git(deps, "-c", "user.name=Editor", "-c", "user.email=editor@example.com", "revert", "--no-edit", removed_at)
    pipeline.run_inline(deps)  # the editor put it back: the next material change replaces it again
    (current,) = aggregates(text_of(deps, COLD))
    assert current != written and "Across 19 executions" in current


def _log(deps, run_id) -> str:
    with deps.session() as s:
        return s.get(SyncRun, run_id).error_log or ""


def test_a_restatement_of_a_question_an_editor_removed_is_held_not_written_back(deps):
    now = datetime.now(UTC)
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(now))
    pipeline.run_inline(deps)
    with deps.session() as s:
        (block,) = s.scalars(select(InsertedCallout.block).where(
            InsertedCallout.sop_file_path == OBJECTIONS, InsertedCallout.block.like("%tried an agency before%")))
    edit_by_hand(deps, OBJECTIONS, drop(block))

    again = EntryIn(id="6d7c7a4e-2d0b-4b43-9f0e-5f1b8b3c1a11", category="question", transcript_type="sales",
                    content="How should we answer the objection 'we tried an agency before and it didn't work'? "
                            "It came up again on three calls this week.",
                    speaker="Dana Whitfield", source_ref="call-later", tags=["objections"], created_at=now)
    with deps.session() as s:
        store.upsert_entries(s, entries=[again])
    run = pipeline.run_inline(deps)
    assert "tried an agency before" not in text_of(deps, OBJECTIONS)
    with deps.session() as s:
        item = s.get(RunItem, (run["run_id"], again.id))
    assert item.status == "held" and f"restates a callout an editor removed from {OBJECTIONS}" in item.error, (
        item.status, item.error)
