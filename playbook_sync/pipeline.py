"""The weekly run as plain functions: start_run, process_entry, finalize_run.

Celery tasks are thin wrappers around these; every function is safe to run twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from playbook_sync import adhoc, matching, store
from playbook_sync.models import KnowledgeEntry, RunItem, SyncRun
from playbook_sync import costs
from playbook_sync import calibration, retrieval
from playbook_sync.providers import chunking
from playbook_sync.providers.base import Embedder
from playbook_sync.runtime import Deps
from playbook_sync.schemas import Action, Candidate, ClassifyRequest, Decision, ItemStatus, RunStatus
from playbook_sync.sops import SopError, is_doc, parse_sop, section_embedding_text, whole_embedding_text

log = logging.getLogger(__name__)


@dataclass
class RunStart:
    run_id: uuid.UUID
    entry_ids: list[uuid.UUID]


def embed_all(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    """Embed texts in as few requests as the embedder allows: ≤ max_batch inputs and, when the
    embedder has a token budget (count_tokens + max_batch_tokens), ≤ that many tokens each."""
    count, budget = getattr(embedder, "count_tokens", None), getattr(embedder, "max_batch_tokens", None)
    sizes = [count(t) for t in texts] if count and budget else [0] * len(texts)
    vectors: list[list[float]] = []
    for start, end in chunking.spans(sizes, max_items=embedder.max_batch, max_total=budget):
        vectors.extend(embedder.embed(texts[start:end]))
    return vectors


def entry_text(entry: KnowledgeEntry) -> str:
    """What we embed for an entry: its content, then its context."""
    return f"{entry.content}\n{entry.context}" if entry.context else entry.content


# -- start -----------------------------------------------------------------------


def start_run(session: Session, deps: Deps, *, trigger: str = "manual", now: datetime | None = None,
              scope: "adhoc.Scope | None" = None) -> RunStart:
    """Open a run (the lock), sync the SOP cache, embed the window's entries, create items.

    With a scope (an ad-hoc enqueue) the run processes exactly the scope's entries and moves
    the window only by adhoc.py's rule.
    """
    now = now or datetime.now(UTC)
    start = store.last_window_end(session)
    planned = adhoc.plan(session, scope, watermark=start, now=now) if scope is not None else None
    if planned is not None:
        start, now, trigger = planned.window_start, planned.window_end, planned.trigger
    run = store.create_run(
        session, window_start=start, window_end=now, trigger=trigger, model=deps.embedder.model
    )
    try:
        # Embedding calls of the start; stored apart: they were paid for even if the start fails.
        with costs.metered(session, deps, run_id=run.id, apart=True) as meter:
            warnings = sync_sops(session, deps, run)
        ids = planned.entry_ids if planned is not None else list(
            dict.fromkeys(store.window_entry_ids(session, start=start, end=now) + store.owed_entry_ids(session)))
        with costs.metered(session, deps, run_id=run.id, apart=True) as entries_meter:
            embed_entries(session, deps.embedder, ids)
        session.flush()
        run.calibration = calibration.calibrate(*calibration.null_scores(session, entry_ids=ids, k=deps.settings.top_k),
                                                model=deps.embedder.model, settings=deps.settings)
        warnings += meter.warnings + entries_meter.warnings  # e.g. inputs truncated to the model's limit
        store.add_items(session, run_id=run.id, entry_ids=ids)
        run.entries_processed = len(ids)
        run.error_log = "\n".join(warnings) or None
        session.commit()
    except Exception as exc:
        session.rollback()
        fail_run(session, run_id=run.id, error=f"start failed: {exc}")
        session.commit()
        raise
    log.info("run %s started: %d entries", run.id, len(ids), extra={"run_id": str(run.id)})
    return RunStart(run.id, ids)


def sync_sops(session: Session, deps: Deps, run: SyncRun) -> list[str]:
    """Re-embed only changed SOPs (path + hash + model), drop removed ones; return warnings."""
    settings, model = deps.settings, deps.embedder.model
    run.base_sha = deps.repo.head()
    tree = deps.repo.read_tree(settings.docs_root, run.base_sha)
    cache = store.sop_cache(session)
    warnings, changed = [], []
    for path, content in sorted(tree.items()):
        if not is_doc(path, settings.docs_root):
            continue
        try:
            doc = parse_sop(path, content)
        except SopError as exc:
            warnings.append(f"skipped {exc}")
            continue
        if cache.get(path) != (doc.content_hash, model):
            changed.append(doc)
    seen = {p for p in tree if is_doc(p, settings.docs_root)}
    store.delete_sops(session, paths=[p for p in cache if p not in seen or any(w.startswith(f"skipped {p}:") for w in warnings)])
    texts = [t for doc in changed for t in [whole_embedding_text(doc), *(section_embedding_text(doc, s) for s in doc.sections)]]
    vectors = iter(embed_all(deps.embedder, texts))
    for doc in changed:
        whole = next(vectors)
        store.replace_sop(session, doc=doc, model=model, whole=whole, sections=[next(vectors) for _ in doc.sections])
    session.flush()
    if changed or len(seen) != len(cache) or retrieval.lexicon_missing(session):
        retrieval.refresh_lexicon(session)  # BM25's IDF follows the playbook
    return warnings


def embed_entries(session: Session, embedder: Embedder, ids: Sequence[uuid.UUID]) -> None:
    """Embed the entries that have no vector for the current model, in batches."""
    rows = store.entries_without_embedding(session, ids=ids, model=embedder.model)
    for row, vector in zip(rows, embed_all(embedder, [entry_text(r) for r in rows]), strict=True):
        row.embedding, row.embedding_model = vector, embedder.model


# -- per entry -------------------------------------------------------------------


def process_entry(session: Session, deps: Deps, *, run_id: uuid.UUID, entry_id: uuid.UUID) -> dict:
    """Match one entry against the SOPs and classify it (one LLM call for all candidates)."""
    with session.no_autoflush:  # the item is written once, at commit, not before each query (bench/)
        return _process_entry(session, deps, run_id=run_id, entry_id=entry_id)


def _process_entry(session: Session, deps: Deps, *, run_id: uuid.UUID, entry_id: uuid.UUID) -> dict:
    item = session.get(RunItem, (run_id, entry_id), with_for_update=True)
    if item is None:
        raise LookupError(f"entry {entry_id} is not part of run {run_id}")
    if item.status != ItemStatus.pending:
        return {"entry_id": str(entry_id), "status": item.status, "repeat": True}  # redelivered: done already
    item.attempts += 1
    # The vector stays in the database, where matching reads it: parsing it here and sending it
    # back was a tenth of a worker's CPU (bench/). embedding_model is written with the vector.
    entry = store.load_entry(session, entry_id=entry_id, vector=False)
    if entry.embedding_model != deps.embedder.model:
        with costs.metered(session, deps, run_id=run_id, entry_id=entry_id):
            embed_entries(session, deps.embedder, [entry_id])
        session.flush()
    run = session.get(SyncRun, run_id)
    gate = calibration.gate_of(run.calibration if run else None, deps.settings, deps.embedder.model)
    best, candidates = retrieval.candidates(session, entry_id=entry_id, k=deps.settings.top_k, gate=gate)
    item.best_score = best
    answered: list[Decision] = []
    if candidates:
        item.best_sop = candidates[0].sop_path
        request = ClassifyRequest(entry=store.to_entry(entry), candidates=candidates)
        if deps.settings.llm_batch:  # classified later with the run's other entries, in one Message Batch (batch.py)
            item.prepared = request.model_dump(mode="json", exclude={"candidates": {"__all__": {"sop_text"}}})
            return {"entry_id": str(entry_id), "status": "prepared"}
        with costs.metered(session, deps, run_id=run_id, entry_id=entry_id):
            answered = deps.llm.classify(request)
    return record_decisions(session, item, candidates, answered)


def record_decisions(session: Session, item: RunItem, candidates: Sequence[Candidate], answered: Sequence[Decision]) -> dict:
    """Log the classifier's decision per candidate and settle the item (matched|redundant|orphaned)."""
    run_id, entry_id = item.run_id, item.entry_id
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
    item.prepared = None
    if Action.enrich in actions:
        item.status = ItemStatus.matched
    elif Action.redundant in actions:
        item.status = ItemStatus.redundant
    else:
        item.status = ItemStatus.orphaned
        rows.append(store.match_row(run_id=run_id, entry_id=entry_id, sop_path=None, action=Action.orphaned,
                                    similarity=item.best_score))
    store.record_matches(session, rows=rows)  # one round trip for the entry's match log
    return {"entry_id": str(entry_id), "status": item.status}


def record_failure(session: Session, *, run_id: uuid.UUID, entry_id: uuid.UUID, error: str) -> dict:
    """Record that an entry failed for good in this run (it is owed to the next run)."""
    item = session.get(RunItem, (run_id, entry_id))
    if item is not None and item.status == ItemStatus.pending:
        item.status, item.error = ItemStatus.failed, error[:2000]
        store.record_match(session, run_id=run_id, entry_id=entry_id, sop_path=None, action=Action.failed)
    return {"entry_id": str(entry_id), "status": ItemStatus.failed, "error": error[:200]}


def fail_run(session: Session, *, run_id: uuid.UUID, error: str) -> None:
    """Mark a run failed (the window does not advance); unfinished items become failed."""
    run = session.get(SyncRun, run_id)
    if run is None or run.status != RunStatus.running:
        return
    for status in (ItemStatus.pending, ItemStatus.matched):
        store.set_items(
            session, run_id=run_id, entry_ids=[i.entry_id for i in store.items(session, run_id=run_id, status=status)],
            status=ItemStatus.failed, error=error[:2000],
        )
    from playbook_sync.finalize import reset_pending

    reset_pending(session, run_id)
    costs.close_run(session, run)  # what the failed run spent is still recorded
    run.status, run.finished_at = RunStatus.failed, datetime.now(UTC)
    run.error_log = "\n".join(filter(None, [run.error_log, error]))


def reap_stuck_runs(session: Session, *, deadline_seconds: int, now: datetime | None = None) -> list[uuid.UUID]:
    """Fail runs still 'running' past the deadline (lost chord, dead broker); the window stays."""
    now = now or datetime.now(UTC)
    stuck = session.scalars(
        select(SyncRun.id).where(SyncRun.status == RunStatus.running,
                                 SyncRun.run_at < now - timedelta(seconds=deadline_seconds))
    ).all()
    for run_id in stuck:
        fail_run(session, run_id=run_id, error=f"watchdog: still running after {deadline_seconds}s; "
                                                "marked failed so the next run picks its entries up")
        log.warning("watchdog failed stuck run %s", run_id, extra={"run_id": str(run_id)})
    return list(stuck)


def finalize_run(session: Session, deps: Deps, *, run_id: uuid.UUID) -> dict:
    """The chord callback: roll up items, write edits and new SOPs, one commit, log the run."""
    from playbook_sync.finalize import finalize

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
    """Finalize; any error fails the run (window stays, entries owed) instead of raising."""
    try:
        with deps.session() as session:
            return finalize_run(session, deps, run_id=run_id)
    except Exception as exc:
        log.exception("run %s failed in finalize", run_id, extra={"run_id": str(run_id)})
        from playbook_sync.finalize import summary
        from playbook_sync.report import write_quietly

        with deps.session() as session:
            fail_run(session, run_id=run_id, error=f"finalize failed: {type(exc).__name__}: {exc}")
            run = session.get(SyncRun, run_id)
            write_quietly(session, deps, run)  # a failed run gets its report too (what failed, and why)
            return summary(run) | {"error": str(exc)[:500]}


def run_inline(deps: Deps, *, trigger: str = "inline", now: datetime | None = None) -> dict:
    """The whole run in this process, entry by entry (debugging, tests, the bench baseline)."""
    with deps.session() as session:
        started = start_run(session, deps, trigger=trigger, now=now)
    for entry_id in started.entry_ids:
        try:
            with deps.session() as session:
                process_entry(session, deps, run_id=started.run_id, entry_id=entry_id)
        except Exception as exc:  # same rule as the task: recorded, never raised
            with deps.session() as session:
                record_failure(session, run_id=started.run_id, entry_id=entry_id, error=f"{type(exc).__name__}: {exc}")
    return finalize_or_fail(deps, run_id=started.run_id)
