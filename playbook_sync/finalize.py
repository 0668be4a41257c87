"""The chord callback: roll up, cluster orphans, edit, one commit, log the run."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from functools import partial

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, defer

from playbook_sync import (
    background,
    batch,
    callouts,
    costs,
    learning,
    learning_metrics,
    lessons,
    lifecycle,
    orphan_topics,
    orphans,
    outcome_callouts,
    publish,
    report,
    sop_edits,
    store,
    validate,
)
from playbook_sync.changelog import commit_message
from playbook_sync.deps import Deps
from playbook_sync.edits import (
    Applied,
    PlannedBlock,
    PlannedSop,
    apply_blocks,
    draft_new_sop,
    group_for_blocks,
    parse_tree,
    place_new_sop,
)
from playbook_sync.faults import crash_point
from playbook_sync.models import InsertedCallout, KnowledgeEntry, OrphanCluster, SopEmbedding, SyncRun
from playbook_sync.providers.base import NonFastForward, PathHistory
from playbook_sync.schemas import Action, ItemStatus, RunStatus
from playbook_sync.sops import Problem, parse_sop

log = logging.getLogger(__name__)
COMMIT_ATTEMPTS = 3  # a concurrent push is rebased this many times before giving up


def finalize(session: Session, deps: Deps, *, run_id: uuid.UUID) -> dict:
    """Finish a run exactly once; a repeat returns the recorded outcome."""
    run = session.get(SyncRun, run_id, with_for_update=True)
    if run is None:
        raise LookupError(f"run {run_id} does not exist")
    if run.status != RunStatus.running:
        return lifecycle.summary(run)
    if batch.waiting(session, deps.llm, deps.ledger, run, enabled=deps.settings.llm_batch):  # batch mode: poll_batches applies the results, then calls us again
        return lifecycle.summary(run)
    # Header tasks are all done when the callback runs; a pending item lost its task.
    lifecycle.fail_items(session, run_id, statuses=[ItemStatus.pending], error="no outcome recorded (its task was lost, or could not reach the database); owed to the next run")
    landed = lifecycle.landed_commit(deps.repo, run_id)
    if landed:
        lifecycle.adopt(session, run, landed, deps.repo)  # an earlier finalize committed, then died before logging
        return _finish(session, deps, run)
    lifecycle.reset_pending(session, run_id)
    orphans.assign(session, run_id=run_id, threshold=deps.settings.cluster_similarity,
                   entries=_entries(session, lifecycle.item_ids(session, run_id=run_id, status=ItemStatus.orphaned)))
    session.commit()
    learning.before_edits(session, deps, run)  # what editors did with earlier callouts, before we edit again

    head = deps.repo.head()
    docs, not_editable = parse_tree(deps.repo.read_tree(deps.settings.docs_root, head), deps.settings.docs_root,
                                    max_bytes=deps.settings.max_sop_bytes)
    errors: list[str] = []  # new SOPs not created (the cluster stays open)
    # Edit, cluster-name and new-SOP calls; stored apart, since a failed commit rolls this session back.
    with costs.metered(session, deps.ledger, run_id=run_id, apart=True):
        # New-SOP drafts (a name, then a draft: two calls in a row) start first and run while the edits are written.
        clusters = _new_sop_clusters(session, deps, docs)
        drafts = background.start([partial(draft_new_sop, deps.llm, entries=entries, module=module) for _, module, entries in clusters],
                                  deps.settings.llm_concurrency, "finalize-llm")
        try:
            blocks, deferred = _plan_enrichments(session, deps, run_id, docs, not_editable)
            blocks += outcome_callouts.plan(session, deps, run, docs)  # one aggregate per SOP from execution reports
        finally:
            drafted = drafts()
        new_sops = _place_new_sops(clusters, drafted, docs, errors, _used_paths(session, deps) if clusters else set())
    applied = _commit(session, deps, run, blocks, new_sops)
    lifecycle.settle_items(session, run_id, blocks, applied, deferred)
    lifecycle.append_log(run, *(f"{p}; not edited until fixed" for problems in not_editable.values() for p in problems), *errors)
    return _finish(session, deps, run)


def _entries(session: Session, ids: list[uuid.UUID], *, vectors: bool = True) -> list[KnowledgeEntry]:
    stmt = select(KnowledgeEntry).where(KnowledgeEntry.id.in_(ids))
    return list(session.scalars(stmt if vectors else stmt.options(defer(KnowledgeEntry.embedding)))) if ids else []


def _plan_enrichments(session: Session, deps: Deps, run_id: uuid.UUID, docs,
                      not_editable: dict[str, list[Problem]]) -> tuple[list[PlannedBlock], dict[uuid.UUID, str]]:
    """Blocks for this run's enrich decisions: cap per SOP, skip pairs written before."""
    matched = set(lifecycle.item_ids(session, run_id=run_id, status=ItemStatus.matched))
    rows = [m for m in store.matches(session, run_id=run_id, action=Action.enrich) if m.knowledge_entry_id in matched]
    done = store.inserted_pairs(session, sop_paths={m.sop_file_path for m in rows})
    entries = {e.id: store.to_entry(e) for e in _entries(session, list(matched), vectors=False)}
    per_sop: dict[str, list] = defaultdict(list)
    for m in rows:
        if (m.sop_file_path, m.knowledge_entry_id) not in done:
            per_sop[m.sop_file_path].append(m)
    per_sop = learning.plan(session, deps.settings, session.get(SyncRun, run_id), per_sop, {i: e.category for i, e in entries.items()}, docs)
    blocks: list[PlannedBlock] = []
    deferred: dict[uuid.UUID, str] = {}
    jobs: list[tuple] = []  # (path, doc, groups): one edit call per SOP for all of its blocks
    cap = deps.settings.max_enrichments_per_sop
    for path, ms in sorted(per_sop.items()):
        doc = docs.get(path)
        if doc is None:
            why = not_editable[path][0] if path in not_editable else f"{path}: no longer in the playbook"
            deferred.update({m.knowledge_entry_id: f"SOP not editable: {why}" for m in ms})
            continue
        for m in ms[cap:]:
            m.action = Action.deferred
            deferred[m.knowledge_entry_id] = f"{path} reached {cap} enrichments this run"
        jobs.append((path, doc, group_for_blocks(doc, [(entries[m.knowledge_entry_id], m.section) for m in ms[:cap]])))
    # The edit calls are independent: made concurrently, or a big week's callback waits for
    # them one after another (bench/: this was most of a 1,000-entry run's wall time).
    taught = lessons.top_many(session, [doc.path for _, doc, _ in jobs])  # one query, not one per SOP
    outcomes = background.concurrently([partial(sop_edits.plan_sop, deps.llm, doc, groups, lessons=taught[doc.path])
                                        for _, doc, groups in jobs], deps.settings.llm_concurrency, "finalize-llm")
    for (path, _, groups), outcome in zip(jobs, outcomes, strict=True):
        per_block = outcome if isinstance(outcome, list) else [outcome] * len(groups)
        for group, planned in zip(groups.values(), per_block, strict=True):
            if isinstance(planned, Exception):  # one failed edit defers its entries, never the run
                deferred.update({e.id: f"edit for {path} failed: {planned}" for e in group})
            else:
                blocks.append(planned)
    return blocks, deferred


def _new_sop_clusters(session: Session, deps: Deps, docs) -> list[tuple]:
    """(cluster, module, entries) for each cluster that has enough agreeing orphans to become an SOP."""
    modules = {d.module for d in docs.values() if d.module} or {"module-1"}
    return [(c, orphan_topics.home_module(session, entry_ids=[e.id for e in c.entries], modules=modules, k=deps.settings.top_k)
             or orphans.nearest_module(session, centroid=c.centroid, modules=modules), [store.to_entry(e) for e in c.entries])
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
    return used | (deps.repo.paths_ever(deps.settings.docs_root) if isinstance(deps.repo, PathHistory) else set())


def _place_new_sops(clusters: list[tuple], drafts: list, docs, errors: list[str], used: set[str]) -> list[PlannedSop]:
    """Number and render the drafted SOPs in order, each after those placed before it and every path in used."""
    planned: list[PlannedSop] = []
    for (cluster, module, entries), drafted in zip(clusters, drafts, strict=True):
        try:
            if isinstance(drafted, Exception):
                raise drafted
            # The SOPs placed before it count as the folder's last ones: numbers and sidebar positions follow them.
            placed = {p.path: parse_sop(p.path, p.content.encode("utf-8")) for p in planned}
            planned.append(place_new_sop(cluster_id=cluster.id, label=drafted[0], draft=drafted[1], entries=entries,
                                         module=module, docs=docs | placed, taken=used | set(placed)))
        except Exception as exc:  # the cluster stays open and is tried again next run
            errors.append(f"new SOP for cluster {cluster.id} not created: {exc}")
    return planned


def _commit(session: Session, deps: Deps, run: SyncRun, blocks: list[PlannedBlock], new_sops: list[PlannedSop]) -> Applied:
    """Apply the plan to the current head and commit once; rebase onto a moved head."""
    for _ in range(COMMIT_ATTEMPTS):
        head = deps.repo.head()
        tree = deps.repo.read_tree(deps.settings.docs_root, head)
        applied = apply_blocks(tree, blocks, deps.settings.docs_root)
        applied.sops = [s for s in new_sops if s.path not in tree]
        applied.files.update({s.path: s.content.encode("utf-8") for s in applied.sops})
        refused = validate.gate(applied, tree, deps.settings.docs_root) + validate.build_gate(applied, deps.repo, head, deps.settings)
        lifecycle.append_log(run, *refused)  # files failing the lint stay out; a retry's repeats are logged once
        if not applied.files:
            return applied
        _record_pending(session, run.id, applied)
        message = commit_message(run, applied)
        session.commit()  # pending rows are durable before the commit can land
        crash_point("before-commit")
        try:
            run.commit_sha = deps.repo.commit(applied.files, message, parent=head)
        except NonFastForward:
            log.info("branch moved during run %s; re-applying on the new head", run.id)
            lifecycle.reset_pending(session, run.id)
            continue
        crash_point("after-commit")
        run.commit_message = message
        lifecycle.mark_committed(session, run.id, run.commit_sha)
        return applied
    raise RuntimeError(f"branch kept moving: gave up after {COMMIT_ATTEMPTS} attempts")


def _record_pending(session: Session, run_id: uuid.UUID, applied: Applied) -> None:
    lifecycle.reset_pending(session, run_id)
    for b in applied.blocks:
        session.add(InsertedCallout(sop_file_path=b.sop_path, section=b.hint, entry_ids=b.entry_ids,
                                    block_hash=callouts.block_hash(b.block), block=b.block, run_id=run_id))
    for s in applied.sops:
        session.execute(update(OrphanCluster).where(OrphanCluster.id == s.cluster_id)
                        .values(promoted_run_id=run_id, sop_file_path=s.path, label=s.label))


def _finish(session: Session, deps: Deps, run: SyncRun) -> dict:
    """Close the run, then open/update its pull request, POST the webhook, write its report (none can fail it)."""
    lifecycle.close(session, run, deps.settings)
    learning_metrics.after_run(session, deps, run)  # reinforcement from redundant entries, acceptance and the rest
    publish.after_commit(session, deps.repo, run, deps.settings.deploy_webhook_url)
    report.write_quietly(session, deps.settings, deps.repo, run)
    return lifecycle.summary(run)


# -- entry points: the chord callback, and every other way a run ends ------------------------


def finalize_run(session: Session, deps: Deps, *, run_id: uuid.UUID) -> dict:
    """The chord callback: roll up items, write edits and new SOPs, one commit, log the run."""
    # One finalize per run at a time, across workers. The run row lock ends at finalize's
    # first intermediate commit, so a session-level advisory lock is held on a connection
    # of its own for the whole step (a dead worker's connection drops it automatically).
    key = run_id.int & 0x7FFF_FFFF_FFFF_FFFF
    with session.get_bind().engine.connect() as lock:  # .engine: a dry run binds sessions to a Connection
        if not lock.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
            return {"run_id": str(run_id), "status": RunStatus.running, "busy": "another finalize is working on this run"}
        try:
            return finalize(session, deps, run_id=run_id)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def finalize_or_fail(deps: Deps, *, run_id: uuid.UUID) -> dict:
    """Finalize; any error ends the run through fail_run (adopting a landed commit) instead of raising."""
    try:
        with deps.session() as session:
            return finalize_run(session, deps, run_id=run_id)
    except Exception as exc:
        log.exception("run %s failed in finalize", run_id, extra={"run_id": str(run_id)})
        ended = fail_run(deps, run_id=run_id, error=f"finalize failed: {type(exc).__name__}: {exc}")
        with deps.session() as session:
            return lifecycle.summary(session.get(SyncRun, run_id)) | (ended or {}) | {"error": str(exc)[:500]}


def fail_run(deps: Deps, *, run_id: uuid.UUID, error: str, by: str | None = None) -> dict | None:
    """End a running run from outside its chord (finalize failed, watchdog, CLI): lifecycle.fail_run,
    then publish a commit it adopted as finalize would have, and write the run's report.

    Returns the summary (with "adopted" when a landed commit was adopted), or None if the run
    was not running.
    """
    with deps.session() as session:
        ended = lifecycle.fail_run(session, run_id=run_id, error=error, repo=deps.repo, settings=deps.settings, by=by)
        if ended is None:
            return None
        run = session.get(SyncRun, run_id)
        learning_metrics.after_run(session, deps, run)  # its redundant entries are final: they reinforce now or never
        if ended.get("adopted"):
            publish.after_commit(session, deps.repo, run, deps.settings.deploy_webhook_url)
        report.write_quietly(session, deps.settings, deps.repo, run)  # a failed run gets its report too (what failed, and why)
        return lifecycle.summary(run) | {"adopted": ended.get("adopted")}


def reap_stuck_runs(deps: Deps) -> list[uuid.UUID]:
    """The watchdog: end every run still running past the deadline (each adopting a landed commit)."""
    deadline = deps.settings.run_deadline_seconds
    with deps.session() as session:
        stuck = lifecycle.stuck_runs(session, deadline_seconds=deadline)
    for run_id in stuck:
        fail_run(deps, run_id=run_id, error=lifecycle.watchdog_error(deadline))
        log.warning("watchdog ended stuck run %s", run_id, extra={"run_id": str(run_id)})
    return stuck
