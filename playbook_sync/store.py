"""Queries and idempotent upserts. Every function takes keyword-only arguments."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache

from sqlalchemy import DateTime, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from playbook_sync.models import (
    InsertedCallout,
    KnowledgeEntry,
    KnowledgeSopMatch,
    RunItem,
    SopEmbedding,
    SopSection,
    SyncRun,
)
from playbook_sync.schemas import FINAL_ITEM_STATUSES, Entry, EntryIn, ItemStatus, RunStatus, SopDoc


class RunLocked(Exception):
    """Another run is in progress; only one may run at a time."""


# -- entries -----------------------------------------------------------------


def upsert_entries(session: Session, *, entries: Sequence[EntryIn]) -> int:
    """Insert entries, skipping ids already stored; return how many were new."""
    return len(insert_entries(session, entries=entries))


# Rows per INSERT: 9 bound columns each stays far below PostgreSQL's 65,535 parameters,
# and a 100k-line file becomes 100 statements instead of one enormous one.
INSERT_CHUNK = 1000
_ENTRY_FIELDS = ("category", "content", "context", "speaker", "transcript_type", "tags", "source_ref")


def insert_entries(session: Session, *, entries: Sequence[EntryIn], chunk: int = INSERT_CHUNK) -> set[uuid.UUID]:
    """Insert entries in chunks, skipping ids already stored; return the ids that were new.

    Every row carries every column (a multi-row INSERT takes its column list from the
    first row, so rows with fewer keys lost fields or failed to compile). A missing
    created_at is the server's clock; received_at is always the server's clock.
    """
    new: set[uuid.UUID] = set()
    for start in range(0, len(entries), chunk):
        rows = [
            {k: getattr(e, k) for k in _ENTRY_FIELDS} | {"id": e.id or uuid.uuid4(), "given_created_at": e.created_at}
            for e in entries[start:start + chunk]
        ]
        # One statement, many parameter sets (SQLAlchemy batches them as multi-row VALUES):
        # compiling a literal 1,000-row VALUES clause per chunk cost 0.2 s, most of a big ingest.
        new.update(session.connection().scalars(_INSERT_ENTRY, rows))
    return new


_INSERT_ENTRY = (
    insert(KnowledgeEntry)
    .values(created_at=func.coalesce(bindparam("given_created_at", type_=DateTime(timezone=True)), func.now()))
    .on_conflict_do_nothing(index_elements=["id"])
    .returning(KnowledgeEntry.id)
)


def stored_differences(session: Session, *, entries: Sequence[EntryIn]) -> dict[uuid.UUID, list[str]]:
    """For entries whose id is already stored: the fields that differ from the stored row.

    Ingest keeps the stored entry (it may already be in the playbook) and reports these.
    """
    given = {e.id: e for e in entries if e.id is not None}
    out: dict[uuid.UUID, list[str]] = {}
    ids = list(given)
    for start in range(0, len(ids), INSERT_CHUNK):
        chunk = ids[start:start + INSERT_CHUNK]
        for row in session.scalars(select(KnowledgeEntry).options(defer(KnowledgeEntry.embedding)).where(KnowledgeEntry.id.in_(chunk))):
            entry = given[row.id]
            fields = [k for k in _ENTRY_FIELDS if (getattr(row, k) or None) != (getattr(entry, k) or None)]
            if entry.created_at is not None and row.created_at != entry.created_at:
                fields.append("created_at")
            if fields:
                out[row.id] = fields
    return out


def load_entry(session: Session, *, entry_id: uuid.UUID, vector: bool = True) -> KnowledgeEntry:
    """The entry row (raises if missing); with vector=False its embedding is loaded only if read."""
    row = session.get(KnowledgeEntry, entry_id, options=None if vector else [defer(KnowledgeEntry.embedding)])
    if row is None:
        raise LookupError(f"knowledge entry {entry_id} does not exist")
    return row


def embedding_of(entry_id: uuid.UUID):
    """The entry's stored vector as a SQL expression (for queries that should not ship it back and forth)."""
    return select(KnowledgeEntry.embedding).where(KnowledgeEntry.id == entry_id).scalar_subquery()


def to_entry(row: KnowledgeEntry) -> Entry:
    """Row → the payload providers see."""
    return Entry.model_validate(row, from_attributes=True)


def entries_without_embedding(session: Session, *, ids: Sequence[uuid.UUID], model: str) -> list[KnowledgeEntry]:
    """Entries whose stored vector is missing or from another model (loaded without it: it is replaced)."""
    stmt = select(KnowledgeEntry).options(defer(KnowledgeEntry.embedding), defer(KnowledgeEntry.search)).where(
        KnowledgeEntry.id.in_(ids),
        (KnowledgeEntry.embedding.is_(None)) | (KnowledgeEntry.embedding_model.is_distinct_from(model)),
    )
    return list(session.scalars(stmt.order_by(KnowledgeEntry.created_at, KnowledgeEntry.id)))


# -- runs and windows ----------------------------------------------------------


def last_window_end(session: Session) -> datetime | None:
    """Where the next window starts: the end of the last success|partial run.

    Ad-hoc runs that did not cover the window's start (trigger `adhoc:…`) do not count:
    they must not move the window past entries they never processed (see adhoc.py).
    """
    return session.scalar(
        select(func.max(SyncRun.window_end)).where(
            SyncRun.status.in_([RunStatus.success, RunStatus.partial]),
            SyncRun.trigger.not_like("adhoc:%"),
        )
    )


def create_run(session: Session, *, window_start: datetime | None, window_end: datetime, trigger: str, model: str) -> SyncRun:
    """Open a run row; the partial unique index makes this the run lock."""
    run = SyncRun(
        window_start=window_start, window_end=window_end, trigger=trigger,
        embedding_model=model, status=RunStatus.running,
    )
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        other = session.scalar(select(SyncRun).where(SyncRun.status == RunStatus.running))
        since = f" (run {other.id}, started {other.run_at:%Y-%m-%d %H:%M:%S} UTC)" if other else ""
        raise RunLocked(f"another playbook-sync run is already running{since}; refusing to start a second one") from None
    return run


def window_entry_ids(session: Session, *, start: datetime | None, end: datetime) -> list[uuid.UUID]:
    """Entries created in (start, end], by their own created_at.

    Only `enqueue window` uses this (an operator names a span of the entries' dates); it
    never decides whether an entry is owed: that is owed_entry_ids, by outcome.
    """
    stmt = select(KnowledgeEntry.id).where(KnowledgeEntry.created_at <= end)
    if start is not None:
        stmt = stmt.where(KnowledgeEntry.created_at > start)
    return list(session.scalars(stmt.order_by(KnowledgeEntry.created_at, KnowledgeEntry.id)))


def received_entry_ids(session: Session, *, start: datetime | None, end: datetime) -> list[uuid.UUID]:
    """Entries received (stored, server clock) in (start, end]: what a weekly run's window held."""
    stmt = select(KnowledgeEntry.id).where(KnowledgeEntry.received_at <= end)
    if start is not None:
        stmt = stmt.where(KnowledgeEntry.received_at > start)
    return list(session.scalars(stmt.order_by(KnowledgeEntry.created_at, KnowledgeEntry.id)))


def owed_entry_ids(session: Session) -> list[uuid.UUID]:
    """Every stored entry still owed a final outcome, oldest created first.

    Owed = never taken by a completed (success|partial) run, or its latest item in one is
    not final (failed, deferred, ...), and not taken by a run that is running now. The
    client's created_at plays no part: a back-dated or future-dated entry is owed like any
    other. A failed run settles nothing (its window never advanced under the old rule
    either): its orphans were never clustered, its redundant entries never counted.
    """
    latest = (
        select(
            RunItem.entry_id,
            RunItem.status,
            func.row_number().over(partition_by=RunItem.entry_id, order_by=(SyncRun.run_at.desc(), SyncRun.id)).label("rn"),
        )
        .join(SyncRun, SyncRun.id == RunItem.run_id)
        .where(SyncRun.status.in_([RunStatus.success, RunStatus.partial]))
        .subquery()
    )
    settled = select(latest.c.entry_id).where(latest.c.rn == 1, latest.c.status.in_(list(FINAL_ITEM_STATUSES)))
    busy = select(RunItem.entry_id).join(SyncRun, SyncRun.id == RunItem.run_id).where(SyncRun.status == RunStatus.running)
    stmt = select(KnowledgeEntry.id).where(KnowledgeEntry.id.not_in(settled), KnowledgeEntry.id.not_in(busy))
    return list(session.scalars(stmt.order_by(KnowledgeEntry.created_at, KnowledgeEntry.id)))


def add_items(session: Session, *, run_id: uuid.UUID, entry_ids: Iterable[uuid.UUID]) -> None:
    """One pending item per entry of the run (idempotent)."""
    rows = [{"run_id": run_id, "entry_id": e} for e in entry_ids]
    if rows:
        session.execute(insert(RunItem).values(rows).on_conflict_do_nothing())


def items(session: Session, *, run_id: uuid.UUID, status: str | None = None) -> list[RunItem]:
    """The run's items, optionally of one status."""
    stmt = select(RunItem).where(RunItem.run_id == run_id)
    if status:
        stmt = stmt.where(RunItem.status == status)
    return list(session.scalars(stmt.order_by(RunItem.entry_id)))


def set_items(session: Session, *, run_id: uuid.UUID, entry_ids: Iterable[uuid.UUID], status: ItemStatus, error: str | None = None) -> None:
    """Set the status (and error) of several items at once."""
    ids = list(entry_ids)
    if ids:
        session.execute(
            update(RunItem)
            .where(RunItem.run_id == run_id, RunItem.entry_id.in_(ids))
            .values(status=status, error=error)
        )


def match_row(*, run_id: uuid.UUID, entry_id: uuid.UUID, sop_path: str | None, action: str, similarity: float | None = None, section: str | None = None, rationale: str | None = None, confidence: float | None = None) -> dict:
    """One (run, entry, SOP) match row for record_matches."""
    return dict(
        id=uuid.uuid4(), sync_run_id=run_id, knowledge_entry_id=entry_id, sop_file_path=sop_path, action=action,
        similarity_score=similarity, section=section, rationale=rationale, confidence=confidence,
    )


MATCH_COLUMNS = ("id", "sync_run_id", "knowledge_entry_id", "sop_file_path", "action", "similarity_score", "section",
                 "rationale", "confidence")  # what match_row fills
_MATCH_UPDATED = ("action", "similarity_score", "section", "rationale", "confidence")
# A match row is per (run, entry, SOP): writing one again (a re-run run, a redelivered task) updates it.
MATCHES_ON_CONFLICT = ("ON CONFLICT ON CONSTRAINT uq_cp_knowledge_sop_matches_run_entry_sop DO UPDATE SET "
                       + ", ".join(f"{c} = excluded.{c}" for c in _MATCH_UPDATED))


def rows_sql(table, columns: Sequence[str], n: int, prefix: str = "") -> tuple[str, list]:
    """`INSERT INTO table (columns) VALUES` n rows of bound parameters `:{prefix}{column}_{i}`, and the parameters
    (typed by the table's columns), for statements kept as text (rows_params fills them)."""
    rows = ", ".join("(" + ", ".join(f":{prefix}{c}_{i}" for c in columns) + ")" for i in range(n))
    params = [bindparam(f"{prefix}{c}_{i}", type_=table.c[c].type) for i in range(n) for c in columns]
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {rows}", params


def rows_params(rows: Sequence[dict], columns: Sequence[str], prefix: str = "") -> dict:
    """The parameters of rows_sql for these rows."""
    return {f"{prefix}{c}_{i}": r[c] for i, r in enumerate(rows) for c in columns}


def distinct_matches(rows: Sequence[dict]) -> list[dict]:
    """One statement cannot update a row twice: of rows for the same SOP the last wins, as one upsert after another did."""
    return list({(r["sync_run_id"], r["knowledge_entry_id"], r["sop_file_path"]): r for r in rows}.values())


@lru_cache(maxsize=16)
def _upsert_matches(n: int):
    """An upsert of n match rows as one multi-row INSERT, built once per row count (an entry has at most top_k + 1).

    An executemany of a one-row upsert was one round trip per row (SQLAlchemy batches no INSERT with ON CONFLICT
    DO UPDATE into one statement), and the ORM's bulk path around it cost a worker more CPU than the rows (bench/).
    Text, not insert().values([...]): SQLAlchemy caches no multi-row VALUES, and compiling it per entry cost more
    than the round trip it saves.
    """
    sql, params = rows_sql(KnowledgeSopMatch.__table__, MATCH_COLUMNS, n)
    return text(f"{sql} {MATCHES_ON_CONFLICT}").bindparams(*params)


def record_match(session: Session, *, run_id: uuid.UUID, entry_id: uuid.UUID, sop_path: str | None, action: str, similarity: float | None = None, section: str | None = None, rationale: str | None = None, confidence: float | None = None) -> None:
    """Upsert the (run, entry, SOP) match row."""
    record_matches(session, rows=[match_row(run_id=run_id, entry_id=entry_id, sop_path=sop_path, action=action, similarity=similarity,
                                            section=section, rationale=rationale, confidence=confidence)])


def record_matches(session: Session, *, rows: Sequence[dict]) -> None:
    """Upsert several match rows (from match_row; distinct SOPs) in one round trip."""
    rows = distinct_matches(rows)
    if rows:
        session.execute(_upsert_matches(len(rows)), rows_params(rows, MATCH_COLUMNS))


def matches(session: Session, *, run_id: uuid.UUID, action: str) -> list[KnowledgeSopMatch]:
    """The run's match rows with one action, best similarity first."""
    stmt = select(KnowledgeSopMatch).where(
        KnowledgeSopMatch.sync_run_id == run_id, KnowledgeSopMatch.action == action
    )
    return list(session.scalars(stmt.order_by(KnowledgeSopMatch.similarity_score.desc().nulls_last(), KnowledgeSopMatch.knowledge_entry_id)))


# -- SOP embedding cache ---------------------------------------------------------


def sop_cache(session: Session) -> dict[str, tuple[str, str]]:
    """file_path → (cache key, embedding_model) of every cached SOP; the key (sops.index_key) is kept in the
    content_hash column."""
    rows = session.execute(select(SopEmbedding.file_path, SopEmbedding.content_hash, SopEmbedding.embedding_model))
    return {path: (digest, model) for path, digest, model in rows}


def replace_sop(session: Session, *, doc: SopDoc, model: str, whole: list[float], sections: list[list[float]]) -> None:
    """Store an SOP and its section vectors, replacing any older version."""
    from playbook_sync.sops import index_key, section_embedding_text

    session.execute(delete(SopEmbedding).where(SopEmbedding.file_path == doc.path))
    row = SopEmbedding(
        file_path=doc.path, content_hash=index_key(doc), embedding=whole, embedding_model=model,
        title=doc.title, content=doc.content, sop_id=doc.sop_id, module=doc.module,
    )
    session.add(row)
    session.flush()
    session.add_all(
        SopSection(sop_embedding_id=row.id, file_path=doc.path, heading=s.heading, position=i, embedding=v,
                   body=section_embedding_text(doc, s))  # the lexical side of hybrid retrieval reads this
        for i, (s, v) in enumerate(zip(doc.sections, sections, strict=True))
    )


def delete_sops(session: Session, *, paths: Iterable[str]) -> None:
    """Drop removed SOPs (sections cascade)."""
    paths = list(paths)
    if paths:
        session.execute(delete(SopEmbedding).where(SopEmbedding.file_path.in_(paths)))


def sops(session: Session, *, paths: Iterable[str]) -> dict[str, SopEmbedding]:
    """Cached SOP rows by path."""
    rows = session.scalars(select(SopEmbedding).where(SopEmbedding.file_path.in_(list(paths))))
    return {r.file_path: r for r in rows}


# -- callouts (no-duplicates invariant) ---------------------------------------------


def inserted_pairs(session: Session, *, sop_paths: Iterable[str]) -> set[tuple[str, uuid.UUID]]:
    """(SOP, entry) pairs already written by a committed run: never written again."""
    rows = session.execute(
        select(InsertedCallout.sop_file_path, func.unnest(InsertedCallout.entry_ids)).where(
            InsertedCallout.sop_file_path.in_(list(sop_paths)), InsertedCallout.commit_sha.is_not(None)
        )
    )
    return {(path, entry) for path, entry in rows}


def item_counts(session: Session, *, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    """Per run, how many of its items are in each status."""
    counts: dict[uuid.UUID, dict[str, int]] = {}
    if run_ids:
        rows = session.execute(select(RunItem.run_id, RunItem.status, func.count()).where(RunItem.run_id.in_(list(run_ids)))
                               .group_by(RunItem.run_id, RunItem.status))
        for run_id, status, n in rows:
            counts.setdefault(run_id, {})[status] = n
    return counts


def running_run_since(session: Session, *, since: datetime | None) -> uuid.UUID | None:
    """The running run (there is at most one: the run lock), if it was opened at or after since."""
    stmt = select(SyncRun.id).where(SyncRun.status == RunStatus.running)
    if since is not None:
        stmt = stmt.where(SyncRun.run_at >= since)
    return session.scalars(stmt.limit(1)).first()


def recent_runs(session: Session, *, limit: int) -> list[SyncRun]:
    """The latest runs, newest first (`playbook-sync runs`)."""
    return list(session.scalars(select(SyncRun).order_by(SyncRun.run_at.desc()).limit(limit)))


def entry_contents(session: Session, *, entry_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """entry id → its text, for the entries that exist; the vectors stay in the database."""
    ids = list(entry_ids)
    if not ids:
        return {}
    return dict(session.execute(select(KnowledgeEntry.id, KnowledgeEntry.content).where(KnowledgeEntry.id.in_(ids))).all())


def recent_embedded_entry_ids(session: Session, *, model: str, limit: int) -> list[uuid.UUID]:
    """The newest entries embedded with `model` (a calibration sample)."""
    return list(session.scalars(select(KnowledgeEntry.id).where(KnowledgeEntry.embedding_model == model)
                                .order_by(KnowledgeEntry.created_at.desc()).limit(limit)))


def has_sop_sections(session: Session) -> bool:
    """Any SOP section stored (what matching and calibration run against)."""
    return session.scalar(select(select(SopSection.id).exists())) or False


def last_calibrated_run(session: Session) -> SyncRun | None:
    """The newest run that recorded a calibration."""
    return session.scalars(select(SyncRun).where(SyncRun.calibration.is_not(None))
                           .order_by(SyncRun.run_at.desc()).limit(1)).first()
