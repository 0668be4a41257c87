"""Ad-hoc runs (the spec's "ad-hoc enqueue"): named entries, an explicit window, or a run's window again.

The weekly window is `(end of the last success|partial run, now]`. An ad-hoc run goes
through the same chord and keeps every invariant, and it follows one rule about the window:

  **an ad-hoc run moves the weekly window only when it processed everything the window
  would skip**, i.e. when its own window starts at or before the current window start
  (it is contiguous with what was already processed). Then its end becomes the new start.

* `entries ID…`: never moves the window (it names entries, not a span of time).
* `window --since S [--until U]`: the entries whose own date (`created_at`, the client's
  timestamp, as reports and the changelog show it) lies in (S, U]; moves the window to U
  only if S is at or before the current window start.
* `run RUN_ID`: the entries that run was given plus those its window now holds (a weekly
  run's window is in received time, a `window` run's in created_at); moves the window under
  the same rule (re-running the failed weekly run that kept the window in place is
  contiguous, so the next weekly run starts after it).

A run that does not move the window is recorded with a trigger starting `adhoc:`, which
`store.last_window_end` ignores; one that does is recorded as `enqueue:window|run`.
The window is bookkeeping only: a weekly run takes every entry still owed a final outcome
(store.owed_entry_ids), so no ad-hoc choice of dates can leave an entry unprocessed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from playbook_sync import store
from playbook_sync.models import KnowledgeEntry, SyncRun
from playbook_sync.schemas import RunStatus

NON_ADVANCING = "adhoc:"  # trigger prefix of runs that do not move the weekly window


class ScopeError(ValueError):
    """An ad-hoc request that cannot run (unknown entry or run, empty window); nothing was opened."""


@dataclass(frozen=True)
class Scope:
    """What an ad-hoc run processes (JSON-able through to_dict/from_dict for the task)."""

    kind: Literal["entries", "window", "run"]
    entry_ids: tuple[uuid.UUID, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    run_id: uuid.UUID | None = None

    def to_dict(self) -> dict:
        """The task payload."""
        return {
            "kind": self.kind, "entry_ids": [str(e) for e in self.entry_ids],
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "run_id": str(self.run_id) if self.run_id else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Scope:
        """Back from the task payload."""
        return cls(
            kind=data["kind"], entry_ids=tuple(uuid.UUID(e) for e in data.get("entry_ids") or ()),
            since=parse_when(data["since"]) if data.get("since") else None,
            until=parse_when(data["until"]) if data.get("until") else None,
            run_id=uuid.UUID(data["run_id"]) if data.get("run_id") else None,
        )


@dataclass
class Plan:
    """The window to record, the trigger, and exactly the entries to process."""

    window_start: datetime | None
    window_end: datetime
    trigger: str
    entry_ids: list[uuid.UUID] = field(default_factory=list)


def parse_when(text: str) -> datetime:
    """An ISO date or date-time; naive values are UTC."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _contiguous(since: datetime | None, watermark: datetime | None) -> bool:
    """True when a window starting at since leaves nothing unprocessed before the weekly window."""
    return since is None or (watermark is not None and since <= watermark)


def plan(session: Session, scope: Scope, *, watermark: datetime | None, now: datetime) -> Plan:
    """Resolve a scope against the database (ScopeError for a request that cannot run)."""
    if scope.kind == "entries":
        return Plan(None, now, f"{NON_ADVANCING}entries", existing_entries(session, scope.entry_ids))
    if scope.kind == "window":
        if scope.since is None:
            raise ScopeError("an ad-hoc window needs a start (--since)")
        until = scope.until or now
        if until <= scope.since:
            raise ScopeError(f"empty window: --until {until:%Y-%m-%d %H:%M} is not after --since {scope.since:%Y-%m-%d %H:%M}")
        ids = store.window_entry_ids(session, start=scope.since, end=until)
        kind = "enqueue:window" if _contiguous(scope.since, watermark) else f"{NON_ADVANCING}window"
        return Plan(scope.since, until, kind, ids)
    if scope.kind == "run":
        run = session.get(SyncRun, scope.run_id) if scope.run_id else None
        if run is None:
            raise ScopeError(f"run {scope.run_id} does not exist")
        if run.status == RunStatus.running:
            raise ScopeError(f"run {run.id} is still running")
        items = [i.entry_id for i in store.items(session, run_id=run.id)]
        if run.trigger.startswith(f"{NON_ADVANCING}entries"):
            return Plan(None, now, f"{NON_ADVANCING}run", items)  # it named entries: it has no window
        by_date = run.trigger.endswith("window")  # an ad-hoc window is a span of created_at
        window = (store.window_entry_ids if by_date else store.received_entry_ids)(
            session, start=run.window_start, end=run.window_end)
        kind = "enqueue:run" if _contiguous(run.window_start, watermark) else f"{NON_ADVANCING}run"
        return Plan(run.window_start, run.window_end, kind, list(dict.fromkeys(items + window)))
    raise ScopeError(f"unknown ad-hoc scope {scope.kind!r}")


def existing_entries(session: Session, ids: tuple[uuid.UUID, ...] | list[uuid.UUID]) -> list[uuid.UUID]:
    """The given entry ids, in order; ScopeError names any that do not exist."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        raise ScopeError("no entry ids given")
    found = set(session.scalars(select(KnowledgeEntry.id).where(KnowledgeEntry.id.in_(wanted))))
    missing = [str(e) for e in wanted if e not in found]
    if missing:
        raise ScopeError(f"unknown knowledge entries: {', '.join(missing)}")
    return wanted
