"""The per-entry reads and the write of process_entry, in as few round trips as possible (issue 12: < 5 ms of CPU
per entry).

A run's calibration gate and its SOP texts do not change while it runs: the run is opened
and the SOP cache synced by start_run, before any entry is processed, and runs do not
overlap (the run lock). So a worker process reads them once per run, not once per entry;
a new run has a new id and reads them afresh. The item and its entry come in one query, and what
the task decided goes back in one statement (settle).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache

from sqlalchemy import Row, TextClause, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from playbook_sync import calibration, lessons, store
from playbook_sync.calibration import Gate
from playbook_sync.costs import TOKEN_FIELDS
from playbook_sync.models import KnowledgeEntry, KnowledgeSopMatch, LlmCall, RunItem, SopEmbedding, SyncRun
from playbook_sync.schemas import Entry

MAX_RUNS = 8  # gates kept (a worker serves one run at a time; a few more cost nothing)
MAX_SOPS = 2048  # SOP texts kept per process (~40 KB each for a long SOP)
_lock = threading.Lock()
_gates: OrderedDict[tuple[uuid.UUID, str], Gate] = OrderedDict()
_sops: OrderedDict[tuple[uuid.UUID, str], tuple[str, str]] = OrderedDict()
_lessons: OrderedDict[tuple[uuid.UUID, str, str], list[str]] = OrderedDict()
CALL_COLUMNS = ("id", "run_id", "entry_id", "step", "provider", "model", "cost_usd", "batch", *TOKEN_FIELDS)  # costs.call_rows


_ITEMS, _ENTRIES = RunItem.__table__, KnowledgeEntry.__table__
ENTRY_FIELDS = ("id", "category", "content", "context", "speaker", "transcript_type", "tags", "source_ref", "created_at")
# Built once, with bound parameters: building the statement per entry cost as much CPU as loading its rows (bench/).
# Plain columns of the tables, not ORM entities: the task only reads them (and writes the item in settle), and
# loading two mapped objects into the session, then flushing the item, cost more CPU than the query (bench/).
_ITEM_AND_ENTRY = (
    select(_ITEMS.c.status, _ITEMS.c.attempts, _ENTRIES.c.embedding_model, *(_ENTRIES.c[f] for f in ENTRY_FIELDS))
    .select_from(_ITEMS.join(_ENTRIES, _ENTRIES.c.id == _ITEMS.c.entry_id))
    .where(_ITEMS.c.run_id == bindparam("run_id"), _ITEMS.c.entry_id == bindparam("entry_id"))
    .with_for_update(of=_ITEMS))


def item_and_entry(session: Session, *, run_id: uuid.UUID, entry_id: uuid.UUID) -> Row | None:
    """The run item (row-locked: status, attempts) and its entry (ENTRY_FIELDS, embedding_model) as one row, or None
    when the entry is not in the run; the entry's vector and lexemes stay in the database, where matching reads them."""
    # On the session's connection (same transaction): a Core statement needs none of the ORM's execution path,
    # and nothing is pending to autoflush before it.
    return session.connection().execute(_ITEM_AND_ENTRY, {"run_id": run_id, "entry_id": entry_id}).first()


def entry_of(row: Row) -> Entry:
    """The entry of an item_and_entry row, as providers see it (store.to_entry of a plain row)."""
    return Entry.model_validate({f: getattr(row, f) for f in ENTRY_FIELDS})


@lru_cache(maxsize=64)
def _settle(calls: int, matches: int) -> TextClause:
    """The item's state, the entry's model-call rows and its match rows in one statement (data-modifying CTEs,
    each run once and to completion), built once per row count: three ORM flushes and upserts were three round
    trips, and the unit of work around them more CPU than the rows (issue 12)."""
    parts, params = [], []
    if calls:
        sql, typed = store.rows_sql(LlmCall.__table__, CALL_COLUMNS, calls, "c")
        parts.append(f"calls AS ({sql} ON CONFLICT (id) DO NOTHING)")  # the rows' ids: writing them again adds none
        params += typed
    if matches:
        sql, typed = store.rows_sql(KnowledgeSopMatch.__table__, store.MATCH_COLUMNS, matches, "m")
        parts.append(f"matches AS ({sql} {store.MATCHES_ON_CONFLICT})")
        params += typed
    update = ("UPDATE cp_sync_run_items SET status = :status, attempts = :attempts, best_score = :best_score, "
              "best_sop = :best_sop, prepared = :prepared, updated_at = now() "
              "WHERE run_id = :run_id AND entry_id = :entry_id")
    params.append(bindparam("prepared", type_=JSONB(none_as_null=True)))  # None: SQL NULL, as the ORM left it
    return text((f"WITH {', '.join(parts)} " if parts else "") + update).bindparams(*params)


def settle(session: Session, *, run_id: uuid.UUID, entry_id: uuid.UUID, status: str, attempts: int,
           best_score: float | None, best_sop: str | None, prepared: dict | None = None,
           calls: Sequence[dict] = (), matches: Sequence[dict] = ()) -> None:
    """Write what one entry's task decided, in one round trip: the item's state, its calls (costs.call_rows) and
    its match rows (store.match_row, upserted per (run, entry, SOP)). Idempotent: written again, the item gets
    the same state, the calls (by id) and the matches (by their key) are not added twice."""
    matches = store.distinct_matches(matches)
    session.connection().execute(_settle(len(calls), len(matches)), {  # (the connection: as in item_and_entry)
        "run_id": run_id, "entry_id": entry_id, "status": status, "attempts": attempts, "best_score": best_score,
        "best_sop": best_sop, "prepared": prepared,
    } | store.rows_params(calls, CALL_COLUMNS, "c") | store.rows_params(matches, store.MATCH_COLUMNS, "m"))


def gate(session: Session, *, run_id: uuid.UUID, settings, model: str) -> Gate:
    """The run's calibration gate (calibration.gate_of), read once per run and process."""
    key = (run_id, model)
    with _lock:
        if key in _gates:
            return _gates[key]
    record = session.scalar(select(SyncRun.calibration).where(SyncRun.id == run_id))
    found = calibration.gate_of(record, settings, model)
    with _lock:
        _gates[key] = found
        while len(_gates) > MAX_RUNS:
            _gates.popitem(last=False)
    return found


def sops(session: Session, *, run_id: uuid.UUID, paths: Iterable[str]) -> dict[str, tuple[str, str]]:
    """path → (title, text) of cached SOPs; only the ones this process has not read in this run are queried."""
    paths = list(dict.fromkeys(paths))
    with _lock:
        found = {p: _sops[(run_id, p)] for p in paths if (run_id, p) in _sops}
    missing = [p for p in paths if p not in found]
    if missing:
        rows = session.execute(select(SopEmbedding.file_path, SopEmbedding.title, SopEmbedding.content)
                               .where(SopEmbedding.file_path.in_(missing))).all()
        with _lock:
            for path, title, content in rows:
                found[path] = _sops[(run_id, path)] = (title, content)
            while len(_sops) > MAX_SOPS:
                _sops.popitem(last=False)
    return found


def annotate_lessons(session: Session, *, run_id: uuid.UUID, candidates, category: str) -> None:
    """Give each candidate SOP its editors' top lessons for the category, read once per run and process:
    lessons are learnt by a run's finalize, after all of its entries were processed."""
    with _lock:
        found = {c.sop_path: _lessons[(run_id, c.sop_path, category)] for c in candidates
                 if (run_id, c.sop_path, category) in _lessons}
    missing = [c.sop_path for c in candidates if c.sop_path not in found]
    if missing:
        fresh = lessons.top_for(session, missing, category)
        with _lock:
            for path, texts in fresh.items():
                _lessons[(run_id, path, category)] = texts
            while len(_lessons) > MAX_SOPS:
                _lessons.popitem(last=False)
        found |= fresh
    for c in candidates:
        c.lessons = found[c.sop_path]
