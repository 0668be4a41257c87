"""The chord callback: roll up, cluster orphans, edit, one commit, log the run."""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, defer

from playbook_sync import batch, callouts, costs, orphans, publish, report, store, validate
from playbook_sync.changelog import commit_message, trailer
from playbook_sync.edits import Applied, PlannedBlock, PlannedSop, apply_blocks, draft_new_sop, group_for_blocks, parse_tree, place_new_sop, plan_block
from playbook_sync.models import InsertedCallout, KnowledgeEntry, OrphanCluster, SopEmbedding, SyncRun
from playbook_sync.providers.base import NonFastForward
from playbook_sync.runtime import Deps
from playbook_sync.schemas import Action, ItemStatus, RunStatus

log = logging.getLogger(__name__)
COMMIT_ATTEMPTS = 3  # a concurrent push is rebased this many times before giving up
T = TypeVar("T")


def finalize(session: Session, deps: Deps, *, run_id: uuid.UUID) -> dict:
    """Finish a run exactly once; a repeat returns the recorded outcome."""
    run = session.get(SyncRun, run_id, with_for_update=True)
    if run is None:
        raise LookupError(f"run {run_id} does not exist")
    if run.status != RunStatus.running:
        return summary(run)
    if batch.waiting(session, deps, run):  # batch mode: poll_batches applies the results, then calls us again
        return summary(run)
    # Header tasks are all done when the callback runs; a pending item lost its task.
    lost = store.items(session, run_id=run_id, status=ItemStatus.pending)
    store.set_items(session, run_id=run_id, entry_ids=[i.entry_id for i in lost], status=ItemStatus.failed,
                    error="never processed (task lost); owed to the next run")
    landed = deps.repo.find_commit_with_trailer(trailer(run_id))
    if landed:
        _adopt(session, run, landed)  # an earlier finalize committed, then died before logging
        return _finish(session, deps, run)
    reset_pending(session, run_id)
    orphans.assign(session, run_id=run_id, threshold=deps.settings.cluster_similarity,
                   entries=_entries(session, [i.entry_id for i in store.items(session, run_id=run_id, status=ItemStatus.orphaned)]))
    session.commit()

    head = deps.repo.head()
    docs, errors = parse_tree(deps.repo.read_tree(deps.settings.docs_root, head), deps.settings.docs_root,
                              max_bytes=deps.settings.max_sop_bytes)
    # Edit, cluster-name and new-SOP calls; stored apart, since a failed commit rolls this session back.
    with costs.metered(session, deps, run_id=run_id, apart=True):
        # New-SOP drafts (a name, then a draft: two calls in a row) start first and run while the edits are written.
        clusters = _new_sop_clusters(session, deps, docs)
        drafts = _start([partial(draft_new_sop, deps.llm, entries=entries, module=module) for _, module, entries in clusters],
                        deps.settings.llm_concurrency)
        try:
            blocks, deferred = _plan_enrichments(session, deps, run_id, docs, errors)
        finally:
            drafted = drafts()
        new_sops = _place_new_sops(clusters, drafted, docs, errors, _used_paths(session, deps) if clusters else set())
    applied = _commit(session, deps, run, blocks, new_sops)
    _settle_items(session, run_id, blocks, applied, deferred)
    run.error_log = "\n".join(filter(None, [run.error_log, *errors]))
    return _finish(session, deps, run)


def _entries(session: Session, ids: list[uuid.UUID], *, vectors: bool = True) -> list[KnowledgeEntry]:
    stmt = select(KnowledgeEntry).where(KnowledgeEntry.id.in_(ids))
    return list(session.scalars(stmt if vectors else stmt.options(defer(KnowledgeEntry.embedding)))) if ids else []


def _plan_enrichments(session: Session, deps: Deps, run_id: uuid.UUID, docs, errors: list[str]) -> tuple[list[PlannedBlock], dict[uuid.UUID, str]]:
    """Blocks for this run's enrich decisions: cap per SOP, skip pairs written before."""
    matched = {i.entry_id for i in store.items(session, run_id=run_id, status=ItemStatus.matched)}
    rows = [m for m in store.matches(session, run_id=run_id, action=Action.enrich) if m.knowledge_entry_id in matched]
    done = store.inserted_pairs(session, sop_paths={m.sop_file_path for m in rows})
    entries = {e.id: store.to_entry(e) for e in _entries(session, list(matched), vectors=False)}
    per_sop: dict[str, list] = defaultdict(list)
    for m in rows:
        if (m.sop_file_path, m.knowledge_entry_id) not in done:
            per_sop[m.sop_file_path].append(m)
    blocks: list[PlannedBlock] = []
    deferred: dict[uuid.UUID, str] = {}
    jobs: list[tuple] = []  # (path, doc, kind, section, entries): one edit call each
    cap = deps.settings.max_enrichments_per_sop
    for path, ms in sorted(per_sop.items()):
        doc = docs.get(path)
        if doc is None:
            why = next((e for e in errors if e.startswith(f"{path}:")), f"{path}: no longer in the playbook")
            deferred.update({m.knowledge_entry_id: f"SOP not editable: {why}" for m in ms})
            continue
        for m in ms[cap:]:
            m.action = Action.deferred
            deferred[m.knowledge_entry_id] = f"{path} reached {cap} enrichments this run"
        groups = group_for_blocks(doc, [(entries[m.knowledge_entry_id], m.section) for m in ms[:cap]])
        jobs += [(path, doc, kind, section, group) for (section, kind), group in groups.items()]
    # The edit calls are independent: made concurrently, or a big week's callback waits for
    # them one after another (bench/: this was most of a 1,000-entry run's wall time).
    outcomes = _concurrently([partial(plan_block, deps.llm, doc, kind, section, group) for _, doc, kind, section, group in jobs],
                             deps.settings.llm_concurrency)
    for (path, *_, group), outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, Exception):  # one failed edit defers its entries, never the run
            deferred.update({e.id: f"edit for {path} failed: {outcome}" for e in group})
        else:
            blocks.append(outcome)
    return blocks, deferred


def _new_sop_clusters(session: Session, deps: Deps, docs) -> list[tuple]:
    """(cluster, module, entries) for each cluster that has enough agreeing orphans to become an SOP."""
    modules = {d.module for d in docs.values() if d.module} or {"module-1"}
    return [(c, orphans.nearest_module(session, centroid=c.centroid, modules=modules), [store.to_entry(e) for e in c.entries])
            for c in orphans.promotable(session, min_entries=deps.settings.cluster_min_entries,
                                        min_sources=deps.settings.cluster_min_sources)]


def _used_paths(session: Session, deps: Deps) -> set[str]:
    """SOP paths a new SOP must not reuse, even if a person deleted the file since.

    The run's base tree (the SOP cache was synced from it), every SOP path we ever created or
    enriched, and, where history is cheap (a local git repository), every path the docs root
    ever held. The GitHub API would need one request per commit for that, so there the
    database record stands in for the history.
    """
    used = set(session.scalars(select(SopEmbedding.file_path)))
    used |= set(session.scalars(select(OrphanCluster.sop_file_path).where(OrphanCluster.sop_file_path.is_not(None))))
    used |= set(session.scalars(select(InsertedCallout.sop_file_path).distinct()))
    history = getattr(deps.repo, "paths_ever", None)
    return used | (history(deps.settings.docs_root) if history else set())


def _place_new_sops(clusters: list[tuple], drafts: list, docs, errors: list[str], used: set[str]) -> list[PlannedSop]:
    """Number and render the drafted SOPs in order, each after those placed before it and every path in used."""
    planned: list[PlannedSop] = []
    for (cluster, module, entries), drafted in zip(clusters, drafts, strict=True):
        try:
            if isinstance(drafted, Exception):
                raise drafted
            planned.append(place_new_sop(cluster_id=cluster.id, label=drafted[0], draft=drafted[1], entries=entries,
                                         module=module, docs=docs, taken=used | {p.path for p in planned}))
        except Exception as exc:  # the cluster stays open and is tried again next run
            errors.append(f"new SOP for cluster {cluster.id} not created: {exc}")
    return planned


def _guarded(call: Callable[[], T]) -> T | Exception:
    try:
        return call()
    except Exception as exc:
        return exc


def _start(calls: list[Callable[[], T]], workers: int) -> Callable[[], list[T | Exception]]:
    """Start calls on up to `workers` threads; the returned function waits for their results, in order.

    An exception comes back in place of its call's result. With workers <= 1 nothing runs
    until the results are asked for, then the calls run one after another.
    """
    if workers <= 1 or not calls:
        return lambda: [_guarded(c) for c in calls]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="finalize-llm")
    # Each call runs in a copy of this context, so the step's cost meter (a ContextVar) sees it.
    futures = [pool.submit(contextvars.copy_context().run, _guarded, c) for c in calls]

    def results() -> list[T | Exception]:
        try:
            return [f.result() for f in futures]
        finally:
            pool.shutdown()

    return results


def _concurrently(calls: list[Callable[[], T]], workers: int) -> list[T | Exception]:
    """Run calls on up to `workers` threads; results in order, an exception in place of its result."""
    return _start(calls, workers)()


def _commit(session: Session, deps: Deps, run: SyncRun, blocks: list[PlannedBlock], new_sops: list[PlannedSop]) -> Applied:
    """Apply the plan to the current head and commit once; rebase onto a moved head."""
    for _ in range(COMMIT_ATTEMPTS):
        head = deps.repo.head()
        tree = deps.repo.read_tree(deps.settings.docs_root, head)
        applied = apply_blocks(tree, blocks, deps.settings.docs_root)
        applied.sops = [s for s in new_sops if s.path not in tree]
        applied.files.update({s.path: s.content.encode("utf-8") for s in applied.sops})
        refused = [r for r in validate.gate(applied, tree, deps.settings.docs_root)
                   + validate.build_gate(applied, deps.repo, head, deps.settings) if r not in (run.error_log or "")]
        run.error_log = "\n".join(filter(None, [run.error_log, *refused]))  # files failing the lint stay out
        if not applied.files:
            return applied
        _record_pending(session, run.id, applied)
        message = commit_message(run, applied)
        session.commit()  # pending rows are durable before the commit can land
        try:
            run.commit_sha = deps.repo.commit(applied.files, message, parent=head)
        except NonFastForward:
            log.info("branch moved during run %s; re-applying on the new head", run.id)
            reset_pending(session, run.id)
            continue
        run.commit_message = message
        _mark_committed(session, run.id, run.commit_sha)
        return applied
    raise RuntimeError(f"branch kept moving: gave up after {COMMIT_ATTEMPTS} attempts")


def _record_pending(session: Session, run_id: uuid.UUID, applied: Applied) -> None:
    reset_pending(session, run_id)
    for b in applied.blocks:
        session.add(InsertedCallout(sop_file_path=b.sop_path, section=b.hint, entry_ids=b.entry_ids,
                                    block_hash=callouts.block_hash(b.block), block=b.block, run_id=run_id))
    for s in applied.sops:
        session.execute(update(OrphanCluster).where(OrphanCluster.id == s.cluster_id)
                        .values(promoted_run_id=run_id, sop_file_path=s.path, label=s.label))


def reset_pending(session: Session, run_id: uuid.UUID) -> None:
    """Forget what an unfinished attempt of this run planned to write."""
    session.execute(delete(InsertedCallout).where(InsertedCallout.run_id == run_id, InsertedCallout.commit_sha.is_(None)))
    session.execute(update(OrphanCluster).where(OrphanCluster.promoted_run_id == run_id, OrphanCluster.status == "open")
                    .values(promoted_run_id=None, sop_file_path=None))


def _mark_committed(session: Session, run_id: uuid.UUID, sha: str) -> None:
    session.execute(update(InsertedCallout).where(InsertedCallout.run_id == run_id, InsertedCallout.commit_sha.is_(None))
                    .values(commit_sha=sha))
    session.execute(update(OrphanCluster).where(OrphanCluster.promoted_run_id == run_id, OrphanCluster.status == "open")
                    .values(status="promoted"))


def _adopt(session: Session, run: SyncRun, sha: str) -> None:
    """The commit landed earlier: keep what was recorded as pending for it."""
    run.commit_sha = sha
    _mark_committed(session, run.id, sha)
    enriched = {e for c in session.scalars(select(InsertedCallout).where(InsertedCallout.run_id == run.id)) for e in c.entry_ids}
    store.set_items(session, run_id=run.id, entry_ids=enriched, status=ItemStatus.enriched)
    leftover = [i.entry_id for i in store.items(session, run_id=run.id, status=ItemStatus.matched)]
    store.set_items(session, run_id=run.id, entry_ids=leftover, status=ItemStatus.deferred,
                    error="run finished after its commit landed; owed to the next run")


def _settle_items(session: Session, run_id: uuid.UUID, blocks: list[PlannedBlock], applied: Applied, deferred: dict[uuid.UUID, str]) -> None:
    """Every matched entry ends enriched or deferred (with the reason)."""
    for b, reason in applied.dropped:
        deferred.update({e: reason for e in b.entry_ids})
    written = {e for b in applied.blocks + applied.present for e in b.entry_ids}
    for item in store.items(session, run_id=run_id, status=ItemStatus.matched):
        if item.entry_id in deferred:
            item.status, item.error = ItemStatus.deferred, deferred[item.entry_id]
        elif item.entry_id in written or not any(item.entry_id in b.entry_ids for b in blocks):
            # all its enrich pairs are written now, or were written by an earlier run
            item.status = ItemStatus.enriched


def _finish(session: Session, deps: Deps, run: SyncRun) -> dict:
    """Close the run, then open/update its pull request, POST the webhook, write its report (none can fail it)."""
    _close(session, run, deps.settings)
    publish.after_commit(session, deps, run)
    report.write_quietly(session, deps, run)
    return summary(run)


def _close(session: Session, run: SyncRun, settings) -> dict:
    """Count outcomes from the DB, set success|partial and the histogram."""
    items = store.items(session, run_id=run.id)
    count = lambda s: sum(1 for i in items if i.status == s)  # noqa: E731
    run.entries_processed = len(items)
    run.entries_enriched, run.entries_redundant = count(ItemStatus.enriched), count(ItemStatus.redundant)
    run.entries_orphaned, run.entries_deferred = count(ItemStatus.orphaned), count(ItemStatus.deferred)
    run.entries_failed = count(ItemStatus.failed)
    committed = list(session.scalars(select(InsertedCallout).where(InsertedCallout.run_id == run.id, InsertedCallout.commit_sha.is_not(None))))
    run.sops_enriched = sorted({c.sop_file_path for c in committed})
    run.sops_created = sorted(session.scalars(select(OrphanCluster.sop_file_path).where(OrphanCluster.promoted_run_id == run.id, OrphanCluster.status == "promoted")))
    bands = settings.bands_for(run.embedding_model)
    run.score_histogram = histogram([i.best_score for i in items if i.best_score is not None]) | {
        "strong": bands.strong, "weak": bands.weak}
    run.status = RunStatus.partial if run.entries_failed else RunStatus.success
    costs.close_run(session, run)
    run.finished_at = datetime.now(UTC)
    log.info("run %s %s", run.id, run.status, extra={"run_id": str(run.id)})
    return summary(run)


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
