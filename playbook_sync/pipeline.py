"""The weekly run as plain functions: start_run, process_entry, finalize_run.

Celery tasks are thin wrappers around these; every function is safe to run twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from playbook_sync import adhoc, background, bulk, costs, hot_path, lexicon, lifecycle, outcome_callouts, retrieval, store
from playbook_sync.deps import Deps
from playbook_sync.errors import ConfigError
from playbook_sync.finalize import finalize_or_fail, finalize_run  # noqa: F401  (finalize_run: the chord callback's name here)
from playbook_sync.models import KnowledgeEntry, SyncRun
from playbook_sync.providers import chunking
from playbook_sync.providers.base import Embedder
from playbook_sync.schemas import ClassifyRequest, Decision, ItemStatus, SopDoc
from playbook_sync.sops import Problem, check_docs, index_key, section_embedding_text, whole_embedding_text

log = logging.getLogger(__name__)


@dataclass
class RunStart:
    run_id: uuid.UUID
    entry_ids: list[uuid.UUID]


def embed_all(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    """Embed texts in as few requests as the embedder allows (providers.chunking.embed_all, where reports use it too)."""
    return chunking.embed_all(embedder, texts)


def entry_text(entry: KnowledgeEntry) -> str:
    """What we embed for an entry: its content, then its context."""
    return f"{entry.content}\n{entry.context}" if entry.context else entry.content


# -- start -----------------------------------------------------------------------


def start_run(session: Session, deps: Deps, *, trigger: str = "manual", now: datetime | None = None,
              scope: adhoc.Scope | None = None) -> RunStart:
    """Open a run (the lock), sync the SOP cache, embed the owed entries, create items.

    With a scope (an ad-hoc enqueue) the run processes exactly the scope's entries and moves
    the window only by adhoc.py's rule.
    """
    now = now or datetime.now(UTC)
    deps.repo.head()  # a misconfigured repository (RepoPathError, no branch) is refused before a run opens
    start = store.last_window_end(session)
    planned = adhoc.plan(session, scope, watermark=start, now=now) if scope is not None else None
    if planned is not None:
        start, now, trigger = planned.window_start, planned.window_end, planned.trigger
    run = lifecycle.open_run(
        session, window_start=start, window_end=now, trigger=trigger, model=deps.embedder.model
    )
    try:
        # Embedding calls of the start; stored apart: they were paid for even if the start fails.
        with costs.metered(session, deps.ledger, run_id=run.id, apart=True) as meter:
            # Every entry without a final outcome, whatever its created_at says: the window
            # (start, now] is bookkeeping of when we ran, not a filter on the client's dates.
            def owed() -> list[uuid.UUID]:  # asked twice: outcome_callouts.prepare may add outcome entries
                return planned.entry_ids if planned is not None else store.owed_entry_ids(session)

            scan = read_playbook(session, deps, run)  # a wrong docs root is refused before anything is embedded
            # The week's entries are embedded while the SOPs sync: independent requests, one round trip's wait.
            week = EntryEmbedding(session, deps.embedder, owed())
            try:
                skipped = sync_sops(session, deps, run, scan)
                outcome_callouts.prepare(session, deps)  # execution reports: vectors current, unmapped ones as entries
            except BaseException:
                week.wait()  # its call is paid for: on this meter before it is stored apart
                raise
            week.store()
            ids = owed()
            embed_entries(session, deps.embedder, ids)  # the outcome entries prepare just made, if any
        session.flush()
        lexicon.refresh_entry_lexicon(session)
        # The vectors and statistics the nulls read are committed first (caches: a start that fails later keeps them
        # for the next), so the nulls can be measured on two connections at once (retrieval.nulls).
        session.commit()
        run.calibration = retrieval.calibrated(session, entry_ids=ids, model=deps.embedder.model, settings=deps.settings)
        store.add_items(session, run_id=run.id, entry_ids=ids)
        run.entries_processed = len(ids)
        # The run log: each SOP skipped, then the embedders' warnings (e.g. inputs truncated to the model's limit).
        lifecycle.append_log(run, *(f"skipped {p}" for p in skipped), *meter.warnings)
        session.commit()
    except Exception as exc:
        session.rollback()
        lifecycle.fail_run(session, run_id=run.id, error=f"start failed: {exc}", repo=deps.repo, settings=deps.settings)
        session.commit()
        raise
    try:
        lexicon.vacuum_postings(session)
    except SQLAlchemyError as exc:  # the run is open and its entries owed: a slower BM25 is no reason to stop it
        log.warning("run %s: vacuuming the SOP postings failed: %s", run.id, exc, extra={"run_id": str(run.id)})
    log.info("run %s started: %d entries", run.id, len(ids), extra={"run_id": str(run.id)})
    return RunStart(run.id, ids)


@dataclass
class PlaybookScan:
    """The SOPs of the run's base commit, read and checked (read_playbook), before any is embedded."""

    docs: dict[str, SopDoc]
    unreadable: dict[str, list[Problem]]


def read_playbook(session: Session, deps: Deps, run: SyncRun) -> PlaybookScan:
    """The playbook at the branch head (noted on the run as its base); ConfigError when it has no SOPs."""
    settings = deps.settings
    run.base_sha = deps.repo.head()
    tree = deps.repo.read_tree(settings.docs_root, run.base_sha)
    # MDX hazards and duplicate ids do not matter here: such SOPs are still matched against (not edited).
    checkup = check_docs(tree, settings.docs_root, max_bytes=settings.max_sop_bytes, hazards=False)
    # The site's landing page (`slug: /`) welcomes readers; a tip from a call belongs in a procedure.
    docs = {path: doc for path, doc in checkup.docs.items() if not doc.home_page}
    if not docs:  # nothing readable: a wrong setting, not a playbook to empty
        _no_sops(deps, run.base_sha, len(checkup.paths))
    return PlaybookScan(docs, checkup.unreadable())


def sync_sops(session: Session, deps: Deps, run: SyncRun, scan: PlaybookScan | None = None) -> list[Problem]:
    """Re-embed only changed SOPs (path + hash + model), drop removed and unreadable ones; return why each
    unreadable one was skipped (its first problem)."""
    model = deps.embedder.model
    scan = scan or read_playbook(session, deps, run)
    docs, unreadable = scan.docs, scan.unreadable
    cache = store.sop_cache(session)
    changed = [doc for path, doc in docs.items() if cache.get(path) != (index_key(doc), model)]
    removed = [p for p in cache if p not in docs]
    store.delete_sops(session, paths=removed)
    texts = [t for doc in changed for t in [whole_embedding_text(doc), *(section_embedding_text(doc, s) for s in doc.sections)]]
    vectors = iter(embed_all(deps.embedder, texts))
    for doc in changed:
        whole = next(vectors)
        store.replace_sop(session, doc=doc, model=model, whole=whole, sections=[next(vectors) for _ in doc.sections])
    session.flush()
    if changed or removed or lexicon.lexicon_missing(session):
        lexicon.refresh_lexicon(session)  # BM25's IDF follows the playbook
    return [problems[0] for problems in unreadable.values()]


def _no_sops(deps: Deps, sha: str, unreadable: int) -> None:
    """Refuse a run over a playbook without SOPs: it would orphan every entry and empty the cache."""
    settings = deps.settings
    where = f"{settings.playbook_path}" if settings.playbook == "local" else settings.github_repo
    found = f"none of its {unreadable} .md/.mdx files could be read" if unreadable else "no .md/.mdx files there"
    raise ConfigError("PLAYBOOK_SYNC_DOCS_ROOT", f"{settings.docs_root}/ in {where} at {settings.branch} "
                      f"({sha[:8]}) has no SOPs ({found})")


def embed_entries(session: Session, embedder: Embedder, ids: Sequence[uuid.UUID]) -> None:
    """Embed the entries that have no vector for the current model, in batches."""
    EntryEmbedding(session, embedder, ids, meanwhile=False).store()


class EntryEmbedding:
    """The entries without a vector for the embedder's model, embedded in batches on a thread of their own
    (meanwhile) while the caller goes on; store() waits and writes the vectors in the caller's session."""

    def __init__(self, session: Session, embedder: Embedder, ids: Sequence[uuid.UUID], *, meanwhile: bool = True) -> None:
        rows = store.entries_without_embedding(session, ids=ids, model=embedder.model)  # read here: sessions stay on one thread
        self._session, self._model, self._ids = session, embedder.model, [r.id for r in rows]
        # Not meanwhile (one worker): the request is made when the vectors are asked for.
        self._vectors = background.start([partial(embed_all, embedder, [entry_text(r) for r in rows])],
                                         2 if meanwhile and rows else 1, "embed")

    def wait(self) -> None:
        """Wait for the request to end, whatever its outcome (the caller is failing for another reason: an error of
        this request too is logged, not raised over that one)."""
        if isinstance(error := self._vectors()[0], Exception):
            log.warning("embedding the week's entries failed as well: %s", error)

    def store(self) -> None:
        """Wait for the vectors (or the request's error), then write them: one COPY and one UPDATE for all
        (bulk.py), not an UPDATE per entry."""
        vectors = self._vectors()[0]
        if isinstance(vectors, Exception):
            raise vectors
        bulk.store_vectors(self._session, table=KnowledgeEntry.__tablename__, model=self._model,
                           rows=list(zip(self._ids, vectors, strict=True)))


# -- per entry -------------------------------------------------------------------


def process_entry(session: Session, deps: Deps, *, run_id: uuid.UUID, entry_id: uuid.UUID) -> dict:
    """Match one entry against the SOPs and classify it (one LLM call for all candidates)."""
    with session.no_autoflush:  # nothing is written before settle, so no query needs a flush first (bench/)
        return _process_entry(session, deps, run_id=run_id, entry_id=entry_id)


def _process_entry(session: Session, deps: Deps, *, run_id: uuid.UUID, entry_id: uuid.UUID) -> dict:
    row = hot_path.item_and_entry(session, run_id=run_id, entry_id=entry_id)  # one round trip, the item row-locked
    if row is None:
        raise LookupError(f"entry {entry_id} is not part of run {run_id}")
    if row.status != ItemStatus.pending:
        return {"entry_id": str(entry_id), "status": row.status, "repeat": True}  # redelivered: done already
    # The vector stays in the database, where matching reads it: parsing it here and sending it
    # back was a tenth of a worker's CPU (bench/). embedding_model is written with the vector.
    if row.embedding_model != deps.embedder.model:
        with costs.metered(session, deps.ledger, run_id=run_id, entry_id=entry_id):
            embed_entries(session, deps.embedder, [entry_id])
        session.flush()
    gate = hot_path.gate(session, run_id=run_id, settings=deps.settings, model=deps.embedder.model)  # once per run
    best, candidates = retrieval.candidates(session, entry_id=entry_id, k=deps.settings.top_k, gate=gate,
                                            texts=lambda paths: hot_path.sops(session, run_id=run_id, paths=paths))
    item = {"run_id": run_id, "entry_id": entry_id, "attempts": row.attempts + 1, "best_score": best,
            "best_sop": candidates[0].sop_path if candidates else None}
    answered: list[Decision] = []
    calls: list[dict] = []
    if candidates:
        hot_path.annotate_lessons(session, run_id=run_id, candidates=candidates, category=row.category)  # editors' lessons, in the prompt
        request = ClassifyRequest(entry=hot_path.entry_of(row), candidates=candidates)
        if deps.settings.llm_batch:  # classified later with the run's other entries, in one Message Batch (batch.py)
            prepared = request.model_dump(mode="json", exclude={"candidates": {"__all__": {"sop_text"}}})
            hot_path.settle(session, status=ItemStatus.pending, prepared=prepared, **item)
            return {"entry_id": str(entry_id), "status": "prepared"}
        # kept: the calls are written by settle, with the item and its matches (on an error, apart, as always)
        with costs.metered(session, deps.ledger, run_id=run_id, entry_id=entry_id, kept=True) as meter:
            answered = deps.llm.classify(request)
        calls = costs.call_rows(meter)
    status, matches = lifecycle.decided(run_id=run_id, entry_id=entry_id, best_score=best, candidates=candidates,
                                        answered=answered)
    hot_path.settle(session, status=status, calls=calls, matches=matches, **item)  # one round trip for all its writes
    return {"entry_id": str(entry_id), "status": status}


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
                lifecycle.record_failure(session, run_id=started.run_id, entry_id=entry_id, error=f"{type(exc).__name__}: {exc}")
    return finalize_or_fail(deps, run_id=started.run_id)
