"""The per-entry reads of process_entry, in as few round trips as possible (issue 12: < 5 ms of CPU per entry).

A run's calibration gate and its SOP texts do not change while it runs: the run is opened
and the SOP cache synced by start_run, before any entry is processed, and runs do not
overlap (the run lock). So a worker process reads them once per run, not once per entry;
a new run has a new id and reads them afresh. The item and its entry come in one query.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, defer

from playbook_sync import calibration, lessons
from playbook_sync.calibration import Gate
from playbook_sync.models import KnowledgeEntry, RunItem, SopEmbedding, SyncRun

MAX_RUNS = 8  # gates kept (a worker serves one run at a time; a few more cost nothing)
MAX_SOPS = 2048  # SOP texts kept per process (~40 KB each for a long SOP)
_lock = threading.Lock()
_gates: OrderedDict[tuple[uuid.UUID, str], Gate] = OrderedDict()
_sops: OrderedDict[tuple[uuid.UUID, str], tuple[str, str]] = OrderedDict()
_lessons: OrderedDict[tuple[uuid.UUID, str, str], list[str]] = OrderedDict()


# Built once, with bound parameters: building the statement per entry cost as much CPU as loading its rows (bench/).
_ITEM_AND_ENTRY = (
    select(RunItem, KnowledgeEntry).join(KnowledgeEntry, KnowledgeEntry.id == RunItem.entry_id)
    .where(RunItem.run_id == bindparam("run_id"), RunItem.entry_id == bindparam("entry_id"))
    .options(defer(KnowledgeEntry.embedding), defer(KnowledgeEntry.search)).with_for_update(of=RunItem))


def item_and_entry(session: Session, *, run_id: uuid.UUID, entry_id: uuid.UUID) -> tuple[RunItem | None, KnowledgeEntry | None]:
    """The run item (row-locked) and its entry (without its vector and lexemes: matching reads them in the database)."""
    row = session.execute(_ITEM_AND_ENTRY, {"run_id": run_id, "entry_id": entry_id}).first()
    return (row[0], row[1]) if row is not None else (None, None)


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
