"""Issue 13: execution reports feed the weekly run with ONE aggregate outcome callout per mapped SOP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from playbook_sync import demo, outcome_callouts, pipeline, report, reports
from playbook_sync.models import InsertedCallout
from playbook_sync.models_reports import PlaybookReport
from playbook_sync.reports import ReportIn, Stored

pytestmark = pytest.mark.integration

HEADER = ":::note Results From the Field"
MAPPED = {"docs/sops/module-2/sop-2-1-write-cold-email-copy.md", "docs/sops/module-3/sop-3-1-run-a-discovery-call.md",
          "docs/sops/module-3/sop-3-3-write-and-send-proposals.md"}


def ingest(deps, items: list[ReportIn]) -> Stored:
    with deps.session() as s:
        return reports.store_reports(s, deps.embedder, [(i, b"", r) for i, r in enumerate(items, 1)], "test", Stored())


def results_blocks(deps) -> dict[str, int]:
    tree = deps.repo.read_tree(deps.settings.docs_root, deps.repo.head())
    return {p: c.decode().count(HEADER) for p, c in tree.items() if HEADER.encode() in c}


def test_demo_reports_write_one_aggregate_callout_per_sop_and_a_rerun_writes_nothing(deps):
    now = datetime.now(UTC)
    ingest(deps, demo.reports(now))
    first = pipeline.run_inline(deps)
    assert first["status"] == "success"
    assert results_blocks(deps) == dict.fromkeys(MAPPED, 1)
    tree = deps.repo.read_tree(deps.settings.docs_root, deps.repo.head())
    cold = tree["docs/sops/module-2/sop-2-1-write-cold-email-copy.md"].decode()
    # 3 completed + 1 in progress this quarter; reply rate deltas 4.3, 3.1, 2.6 (median of the deltas).
    assert "Across 4 executions this quarter, Reply rate rose a median 3.1 points (2.1% → 5.1%)" in cold
    head = deps.repo.head()
    with deps.session() as s:  # the run report carries the evidence
        built = report.build(s, deps.settings, deps.repo, s.get(report.SyncRun, first["run_id"]))
    assert {e["sop"] for e in built["evidence"]} == MAPPED and all(e["committed"] for e in built["evidence"])
    json.dumps(built, default=str)

    again = pipeline.run_inline(deps)  # same reports: nothing new
    assert again["status"] == "success" and deps.repo.head() == head and results_blocks(deps) == dict.fromkeys(MAPPED, 1)
    ingest(deps, demo.reports(now))  # re-ingesting the same reports: still one row each, nothing new either
    with deps.session() as s:
        assert s.scalar(select(PlaybookReport).where(PlaybookReport.report_id == "rpt-acme-cold-1").limit(1)) is not None
        assert len(list(s.scalars(select(PlaybookReport.report_id)))) == 9
    pipeline.run_inline(deps)
    assert deps.repo.head() == head

    # A material change (a new metric for the proposals playbook): the aggregate there is replaced, nothing else.
    extra = demo.reports(now)[-1].model_copy(update={
        "report_id": "rpt-late-prop", "execution_id": None, "account_id": "acct-late",
        "report_data": {"executive_summary": "Late report.", "outcomes_achieved": ["CSAT 3.2 -> 4.1"]}})
    ingest(deps, [extra])
    pipeline.run_inline(deps)
    assert results_blocks(deps) == dict.fromkeys(MAPPED, 1)
    assert "CSAT" in deps.repo.read_tree("docs")["docs/sops/module-3/sop-3-3-write-and-send-proposals.md"].decode()
    with deps.session() as s:
        assert len(list(s.scalars(select(InsertedCallout).where(InsertedCallout.block.like(f"{HEADER}%"))))) == 4


def test_stats_per_sop_by_id_or_path(deps):
    now = datetime.now(UTC)
    ingest(deps, demo.reports(now))
    pipeline.run_inline(deps)  # syncs the SOP cache the stats read
    with deps.session() as s:
        stats = outcome_callouts.stats(s, deps.settings, "sop-3-1-run-a-discovery-call")
        every = outcome_callouts.stats(s, deps.settings)
        later = outcome_callouts.stats(s, deps.settings, "sop-3-1-run-a-discovery-call", now=now + timedelta(days=200))
        with pytest.raises(LookupError, match="no SOP"):
            outcome_callouts.stats(s, deps.settings, "sop-9-9-nothing")
    (one,) = stats
    assert one["executions"] == 3 and one["completed"] == 2 and one["playbook_ids"] == ["discovery-reset"]
    assert round(one["completion_rate"], 3) == 0.667 and one["median_steps_completed"] == 5
    nps = next(m for m in one["metrics"] if m["metric"] == "NPS")
    assert (nps["count"], nps["median_delta"], nps["median_before"], nps["median_after"]) == (2, 13.0, 27.5, 40.5)
    assert {s["sop"] for s in every} == MAPPED
    assert later[0]["executions"] == 0 and later[0]["summary"] is None  # outside the period


def test_a_report_of_an_unmapped_playbook_becomes_an_outcome_entry_matched_like_any(deps):
    from playbook_sync.models import KnowledgeEntry, RunItem

    now = datetime.now(UTC)
    unmapped = demo.reports(now)[0].model_copy(update={
        "report_id": "rpt-linkedin-1", "execution_id": None, "playbook_id": "linkedin-warmup", "playbook_name": "LinkedIn Warm-up",
        "report_data": {"executive_summary": "Voice notes after a LinkedIn connection request is accepted tripled replies.",
                        "outcomes_achieved": ["LinkedIn reply rate 8% → 24%"]}})
    ingest(deps, [*demo.reports(now), unmapped, unmapped.model_copy(update={"report_id": "rpt-open", "status": "in-progress"})])
    with deps.session() as s:  # embedded by another model (the embedder changed): the run re-embeds it
        s.get(PlaybookReport, "rpt-acme-cold-1").embedding_model = "an-older-model"
    first = pipeline.run_inline(deps)
    with deps.session() as s:
        entries = list(s.scalars(select(KnowledgeEntry).where(KnowledgeEntry.source_ref.like("report:%"))))
        assert [(e.source_ref, e.category, e.transcript_type) for e in entries] == [("report:rpt-linkedin-1", "outcome", "report")]
        assert "LinkedIn reply rate 8% → 24%" in entries[0].content
        item = s.get(RunItem, (first["run_id"], entries[0].id))
        assert item is not None and item.best_sop == "docs/sops/module-2/sop-2-2-run-linkedin-outreach.md"
        assert s.get(PlaybookReport, "rpt-acme-cold-1").embedding_model == deps.embedder.model
    assert pipeline.run_inline(deps)["entries"] == 0  # nothing owed twice, no second entry for the same report
