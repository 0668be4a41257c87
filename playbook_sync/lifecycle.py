"""The run and item lifecycle: open, record outcomes, defer, adopt a landed commit, fail, close.

Every path that ends a run goes through here: finalize's own close, finalize_or_fail, the
watchdog, the CLI noticing its local worker died, and `runs fail`. Each ending first looks
for the run's commit by its trailer (DESIGN §2.8): a run whose commit landed before its
worker died is closed with what it wrote. Failing it instead would reset its items, and the
next run would write the same callouts and create the same new SOPs a second time.

Counts on the run row are always counted from its items, whichever way the run ended.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from playbook_sync import costs, store
from playbook_sync.changelog import trailer
from playbook_sync.models import InsertedCallout, OrphanCluster, RunItem, SyncRun
from playbook_sync.providers.base import CheckedOut, PlaybookRepo
from playbook_sync.schemas import Action, Candidate, Decision, ItemStatus, RunStatus

if TYPE_CHECKING:
    from playbook_sync.config import Settings
    from playbook_sync.edits import Applied, PlannedBlock

log = logging.getLogger(__name__)


# -- open and record -------------------------------------------------------------------


def open_run(session: Session, *, window_start: datetime | None, window_end: datetime, trigger: str, model: str) -> SyncRun:
    """Open a run row; it is the run lock (RunLocked when another run is running)."""
    return store.create_run(session, window_start=window_start, window_end=window_end, trigger=trigger, model=model)


def append_log(run: SyncRun, *lines: str) -> None:
    """Add lines to the run's error_log, the text `runs show` and the report print; nothing else writes it.

    An entry the log already holds, as whole lines, is not repeated: a commit retried on a
    moved head runs the gates again and would refuse the same files in the same words.
    """
    for line in lines:
        if line and f"\n{line}\n" not in f"\n{run.error_log or ''}\n":
            run.error_log = f"{run.error_log}\n{line}" if run.error_log else line


def decided(*, run_id: uuid.UUID, entry_id: uuid.UUID, best_score: float | None, candidates: Sequence[Candidate],
            answered: Sequence[Decision]) -> tuple[ItemStatus, list[dict]]:
    """The item's status (matched|redundant|orphaned) from the classifier's decision per candidate, and the
    match rows (store.match_row) that log them; nothing is written."""
    decisions = {d.sop_path: d for d in answered}
    missing = [c.sop_path for c in candidates if c.sop_path not in decisions]
    if missing:
        raise ValueError(f"classifier gave no decision for {', '.join(missing)}")
    rows = [
        store.match_row(run_id=run_id, entry_id=entry_id, sop_path=c.sop_path, action=decisions[c.sop_path].action,
                        similarity=c.similarity, section=decisions[c.sop_path].section or c.section,
                        rationale=decisions[c.sop_path].rationale, confidence=decisions[c.sop_path].confidence)
        for c in candidates
    ]
    actions = {decisions[c.sop_path].action for c in candidates}
    if Action.enrich in actions:
        return ItemStatus.matched, rows
    if Action.redundant in actions:
        return ItemStatus.redundant, rows
    rows.append(store.match_row(run_id=run_id, entry_id=entry_id, sop_path=None, action=Action.orphaned,
                                similarity=best_score))
    return ItemStatus.orphaned, rows


def record_decisions(session: Session, item: RunItem, candidates: Sequence[Candidate], answered: Sequence[Decision]) -> dict:
    """Log the classifier's decision per candidate and settle the item (matched|redundant|orphaned)."""
    status, rows = decided(run_id=item.run_id, entry_id=item.entry_id, best_score=item.best_score,
                           candidates=candidates, answered=answered)
    item.prepared, item.status = None, status
    store.record_matches(session, rows=rows)  # one round trip for the entry's match log
    return {"entry_id": str(item.entry_id), "status": item.status}


def record_failure(session: Session, *, run_id: uuid.UUID, entry_id: uuid.UUID, error: str) -> dict:
    """Record that an entry failed for good in this run (it is owed to the next run)."""
    item = session.get(RunItem, (run_id, entry_id))
    if item is not None and item.status == ItemStatus.pending:
        item.status, item.error = ItemStatus.failed, error[:2000]
        store.record_match(session, run_id=run_id, entry_id=entry_id, sop_path=None, action=Action.failed)
    return {"entry_id": str(entry_id), "status": ItemStatus.failed, "error": error[:200]}


def fail_items(session: Session, run_id: uuid.UUID, *, statuses: Sequence[ItemStatus], error: str) -> None:
    """Items still in one of statuses become failed (owed to the next run) with error."""
    for status in statuses:
        ids = item_ids(session, run_id=run_id, status=status)
        store.set_items(session, run_id=run_id, entry_ids=ids, status=ItemStatus.failed, error=error[:2000])


def defer(session: Session, run_id: uuid.UUID, reasons: Mapping[uuid.UUID, str]) -> None:
    """Matched items named in reasons become deferred (owed to the next run), each with its reason."""
    _defer_items(store.items(session, run_id=run_id, status=ItemStatus.matched), reasons)


def _defer_items(items, reasons: Mapping[uuid.UUID, str]) -> None:
    for item in items:
        if item.entry_id in reasons:
            item.status, item.error = ItemStatus.deferred, reasons[item.entry_id][:2000]


def settle_items(session: Session, run_id: uuid.UUID, blocks: list[PlannedBlock], applied: Applied,
                 deferred: dict[uuid.UUID, str]) -> None:
    """After the commit: every matched entry ends enriched, redundant (its block repeated a callout the SOP
    already had) or deferred (with the reason)."""
    for b, reason in applied.dropped:
        deferred.update({e: reason for e in b.entry_ids})
    written = {e for b in applied.blocks + applied.present for e in b.entry_ids}
    repeated = {e for b in applied.repeated for e in b.entry_ids} - written
    planned = {e for b in blocks for e in b.entry_ids}
    # One read of the matched items for both rules (defer() and a second read did it in two queries). The
    # deferred ones are flushed first: the flush batches UPDATEs of the same columns only while they are
    # adjacent in primary-key order, and mixing the two kinds made it one UPDATE per item.
    matched = list(store.items(session, run_id=run_id, status=ItemStatus.matched))
    _defer_items(matched, deferred)
    session.flush()
    for item in matched:
        if item.status != ItemStatus.matched:
            continue
        if item.entry_id in repeated:
            item.status = ItemStatus.redundant
        elif item.entry_id in written or item.entry_id not in planned:
            # all its enrich pairs are written now, or were written by an earlier run
            item.status = ItemStatus.enriched


# -- the commit ------------------------------------------------------------------------------


def reset_pending(session: Session, run_id: uuid.UUID) -> None:
    """Forget what an unfinished attempt of this run planned to write."""
    session.execute(delete(InsertedCallout).where(InsertedCallout.run_id == run_id, InsertedCallout.commit_sha.is_(None)))
    session.execute(update(OrphanCluster).where(OrphanCluster.promoted_run_id == run_id, OrphanCluster.status == "open")
                    .values(promoted_run_id=None, sop_file_path=None))


def mark_committed(session: Session, run_id: uuid.UUID, sha: str) -> None:
    """The pending callouts and promoted clusters of this run are now in commit sha."""
    session.execute(update(InsertedCallout).where(InsertedCallout.run_id == run_id, InsertedCallout.commit_sha.is_(None))
                    .values(commit_sha=sha))
    session.execute(update(OrphanCluster).where(OrphanCluster.promoted_run_id == run_id, OrphanCluster.status == "open")
                    .values(status="promoted"))


def landed_commit(repo: PlaybookRepo, run_id: uuid.UUID) -> str | None:
    """The run's commit on the branch, found by its trailer, or None."""
    return repo.find_commit_with_trailer(trailer(run_id))


def adopt(session: Session, run: SyncRun, sha: str, repo: PlaybookRepo | None = None) -> None:
    """The run's commit landed earlier (its worker died before the bookkeeping): keep what it wrote.

    The callouts and clusters recorded as pending for it become committed, their entries
    enriched; any other matched entry is deferred. A local checkout left behind the branch
    (the worker died between moving the branch and updating the work tree) is brought up to
    it, or a person's next `git commit -a` would revert the callouts.
    """
    run.commit_sha = sha
    mark_committed(session, run.id, sha)
    enriched = {e for c in session.scalars(select(InsertedCallout).where(InsertedCallout.run_id == run.id)) for e in c.entry_ids}
    store.set_items(session, run_id=run.id, entry_ids=enriched & _ids(session, run.id, ItemStatus.matched),
                    status=ItemStatus.enriched)
    defer(session, run.id, {e: "run finished after its commit landed; owed to the next run"
                            for e in _ids(session, run.id, ItemStatus.matched)})
    if isinstance(repo, CheckedOut):
        repo.sync_worktree(sha)


def item_ids(session: Session, *, run_id: uuid.UUID, status: str) -> list[uuid.UUID]:
    """The entry ids of the run's items of one status (not store.items: the callers need the ids only)."""
    stmt = select(RunItem.entry_id).where(RunItem.run_id == run_id, RunItem.status == status)
    return list(session.scalars(stmt.order_by(RunItem.entry_id)))


def status_counts(session: Session, *, run_id: uuid.UUID) -> dict[str, int]:
    """How many of the run's items are in each status (counted by the database)."""
    stmt = select(RunItem.status, func.count()).where(RunItem.run_id == run_id).group_by(RunItem.status)
    return {str(status): n for status, n in session.execute(stmt)}


def _ids(session: Session, run_id: uuid.UUID, status: ItemStatus) -> set[uuid.UUID]:
    return set(item_ids(session, run_id=run_id, status=status))


# -- endings ---------------------------------------------------------------------------------


def count(session: Session, run: SyncRun) -> dict[str, int]:
    """Set the run's counters from its items (the only source of truth) and return them."""
    counted = status_counts(session, run_id=run.id)
    n = {s.value: counted.get(s.value, 0) for s in ItemStatus}
    run.entries_processed = sum(counted.values())
    run.entries_enriched, run.entries_redundant = n["enriched"], n["redundant"]
    run.entries_orphaned, run.entries_deferred, run.entries_failed = n["orphaned"], n["deferred"], n["failed"]
    return n


def outcome_status(total: int, failed: int) -> RunStatus:
    """success with no failed entry; failed when every entry (of at least one) failed; else partial."""
    if not failed:
        return RunStatus.success
    return RunStatus.failed if failed == total else RunStatus.partial


def close(session: Session, run: SyncRun, settings: Settings | None = None) -> dict:
    """Count outcomes from the items, set success|partial|failed and the histogram, stamp the end."""
    count(session, run)
    committed = session.scalars(select(InsertedCallout.sop_file_path).where(
        InsertedCallout.run_id == run.id, InsertedCallout.commit_sha.is_not(None)))
    run.sops_enriched = sorted(set(committed))
    run.sops_created = sorted(session.scalars(select(OrphanCluster.sop_file_path).where(
        OrphanCluster.promoted_run_id == run.id, OrphanCluster.status == "promoted")))
    scores = [s for s in session.scalars(select(RunItem.best_score).where(RunItem.run_id == run.id)) if s is not None]
    run.score_histogram = histogram(scores)
    if settings is not None:
        bands = settings.bands_for(run.embedding_model)
        run.score_histogram |= {"strong": bands.strong, "weak": bands.weak}
    run.status = outcome_status(run.entries_processed, run.entries_failed)
    costs.close_run(session, run)
    run.finished_at = datetime.now(UTC)
    log.info("run %s %s", run.id, run.status, extra={"run_id": str(run.id)})
    return summary(run)


def fail_run(session: Session, *, run_id: uuid.UUID, error: str, repo: PlaybookRepo,
             settings: Settings | None = None, by: str | None = None) -> dict | None:
    """End a running run that cannot finish: adopt its landed commit, else fail it (the window stays).

    by names who ends it ("an operator"); the log then says "failed by" only when the run did
    fail: a run whose commit landed is adopted and ends as it ran, and its log must not say failed.
    Returns the run's summary (with "adopted": sha when its commit had landed and the run was
    closed with it), or None when the run is not running.
    """
    run = session.get(SyncRun, run_id, with_for_update=True)
    if run is None or run.status != RunStatus.running:
        return None
    failed = f"{error}; failed by {by}" if by else error  # what a failed item, or the failed run, records
    fail_items(session, run_id, statuses=[ItemStatus.pending], error=failed)
    sha = landed_commit(repo, run_id)
    if sha:
        adopt(session, run, sha, repo)
        append_log(run, f"{error}; the run's commit {sha[:12]} had landed, so {by} adopted it" if by
                   else f"{error} (its commit {sha[:12]} had landed: adopted)")
        log.warning("run %s ended after its commit %s landed: adopted", run_id, sha[:12], extra={"run_id": str(run_id)})
        return close(session, run, settings) | {"adopted": sha}
    fail_items(session, run_id, statuses=[ItemStatus.matched], error=failed)
    reset_pending(session, run_id)
    count(session, run)
    costs.close_run(session, run)  # what the failed run spent is still recorded
    run.status, run.finished_at = RunStatus.failed, datetime.now(UTC)
    append_log(run, failed)
    return summary(run)


def stuck_runs(session: Session, *, deadline_seconds: int, now: datetime | None = None) -> list[uuid.UUID]:
    """Runs still 'running' past the deadline (lost chord, dead broker)."""
    now = now or datetime.now(UTC)
    return list(session.scalars(select(SyncRun.id).where(
        SyncRun.status == RunStatus.running, SyncRun.run_at < now - timedelta(seconds=deadline_seconds))))


def reap_stuck_runs(session: Session, *, repo: PlaybookRepo, deadline_seconds: int, settings: Settings | None = None,
                    now: datetime | None = None) -> list[uuid.UUID]:
    """End runs still 'running' past the deadline (adopting a landed commit); the window stays otherwise."""
    stuck = stuck_runs(session, deadline_seconds=deadline_seconds, now=now)
    for run_id in stuck:
        fail_run(session, run_id=run_id, repo=repo, settings=settings, error=watchdog_error(deadline_seconds))
        log.warning("watchdog ended stuck run %s", run_id, extra={"run_id": str(run_id)})
    return stuck


def watchdog_error(deadline_seconds: int) -> str:
    return (f"watchdog: still running after {deadline_seconds}s; "
            "marked failed so the next run picks its entries up")


# -- records ------------------------------------------------------------------------------------


def histogram(scores: list[float], step: float = 0.05) -> dict:
    """Counts of best-match similarities in fixed bins, so operators can check the bands."""
    bins = int(round(1 / step))
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, max(0, int(s / step)))] += 1
    return {"step": step, "counts": counts, "n": len(scores)}


def summary(run: SyncRun) -> dict:
    """A small JSON-able record of a run."""
    return {
        "run_id": str(run.id), "status": run.status, "commit_sha": run.commit_sha,
        "entries": run.entries_processed, "enriched": run.entries_enriched, "redundant": run.entries_redundant,
        "orphaned": run.entries_orphaned, "deferred": run.entries_deferred, "failed": run.entries_failed,
        "sops_enriched": list(run.sops_enriched or []), "sops_created": list(run.sops_created or []),
        "pull_request_url": run.pull_request_url,
        "cost_usd": round(run.cost_usd or 0.0, 6), "usage": run.usage, "batch_id": run.batch_id,
    }
