"""After a run: reinforcement from redundant entries, and the learning metrics of the run.

Metrics, as docs-agent products report them, over every callout decided so far:
acceptance = (kept + edited) / decided, edit rate = edited / decided, decline rate =
declined / decided, moved rate = moved / decided (the four add up to 1; pending and
sop_deleted callouts are not decided). Freshness lag: the median days from an entry's
capture (created_at) to its callout landing on the default branch (commit mode: the run's
commit; pull request mode: first seen on the base branch after the merge).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from playbook_sync import learning, lessons, store
from playbook_sync.models import InsertedCallout, KnowledgeEntry, SyncRun
from playbook_sync.models_learning import CalloutState, RunLearning
from playbook_sync.schemas import Action
from playbook_sync.survival import ACCEPTED, DECIDED, State, body_of

OVERLAP = 0.5  # share of the shorter text's words a redundant entry must share with a callout to reinforce it
TREND = 8
STRONGEST = 3
_WORD = re.compile(r"[a-z0-9]{3,}")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def _source(entry: KnowledgeEntry) -> str:
    """One independent source: the call it came from, else who said it, else the entry itself."""
    return entry.source_ref or (f"speaker:{entry.speaker}" if entry.speaker else f"entry:{entry.id}")


def reinforce(session: Session, run: SyncRun, now: datetime) -> int:
    """Each redundant entry of the run strengthens the live callout it repeats; return how many did."""
    pairs = [(m.knowledge_entry_id, m.sop_file_path) for m in store.matches(session, run_id=run.id, action=Action.redundant)]
    if not pairs:
        return 0
    sops = {sop for _, sop in pairs}
    live = [(s, c) for s, c in session.execute(select(CalloutState, InsertedCallout).join(
        InsertedCallout, InsertedCallout.id == CalloutState.callout_id).where(
        CalloutState.state.in_([State.pending, State.kept, State.edited, State.moved]))).all()
        if (s.current_sop_path or s.sop_file_path) in sops]
    # Without the vectors: only words and sources are compared here.
    entries = {e.id: e for e in session.scalars(select(KnowledgeEntry).options(defer(KnowledgeEntry.embedding)).where(
        KnowledgeEntry.id.in_({e for e, _ in pairs} | {i for _, c in live for i in c.entry_ids})))}
    done = 0
    for entry_id, sop in pairs:
        entry = entries.get(entry_id)
        here = [(s, c) for s, c in live if (s.current_sop_path or s.sop_file_path) == sop and entry is not None
                and s.category == entry.category]
        if not here:
            continue
        words = _words(entry.content)

        def overlap(pair, words=words) -> float:
            other = _words(body_of(pair[0].current_text or pair[1].block))
            return len(words & other) / max(min(len(words), len(other)), 1)

        state, callout = max(here, key=overlap)
        if overlap((state, callout)) < OVERLAP or entry_id in (state.reinforced_by or []):
            continue
        own = {_source(entries[i]) for i in callout.entry_ids if i in entries}
        state.reinforced_by = [*(state.reinforced_by or []), entry_id]
        state.helpful = (state.helpful or 0) + 1
        state.sources = sorted(set(state.sources or []) | own | {_source(entry)})
        state.last_seen_at = now
        done += 1
    session.flush()
    return done


def compute(session: Session, run: SyncRun, now: datetime) -> dict:
    """The run's learning metrics (see the module docstring), confidences, strongest callouts, held entries."""
    rows = list(session.scalars(select(CalloutState)))
    counts = Counter(r.state for r in rows)
    decided = sum(counts[s] for s in DECIDED)

    def rate(n: int) -> float | None:
        return round(n / decided, 4) if decided else None

    this_run = Counter(r.state for r in rows if r.decided_at and run.run_at and r.decided_at >= run.run_at)
    tables = learning.tables(session, now)
    return {
        "callouts": {s.value: counts[s] for s in State}, "decided": decided,
        "acceptance_rate": rate(sum(counts[s] for s in ACCEPTED)), "edit_rate": rate(counts[State.edited]),
        "decline_rate": rate(counts[State.declined]), "moved_rate": rate(counts[State.moved]),
        "decided_this_run": {s.value: this_run[s] for s in State if this_run[s]},
        "freshness_lag_days": _freshness(session, rows),
        "confidence": {name: [{"sop": k[0], name: k[1], "confidence": round(v[0], 4), "kept": round(v[1], 3),
                               "declined": round(v[2], 3)} for k, v in sorted(t.items())] for name, t in tables.items()},
        "strongest": _strongest(session, rows),
        "held": _held(session, run),
        "lessons": lessons.top_many(session, {r.sop_file_path for r in rows}, now=now),
    }


def _held(session: Session, run: SyncRun) -> list[dict]:
    """This run's held entries, to review: which, where, why, what they say."""
    items = learning.held_items(session, run.id)
    said = store.entry_contents(session, entry_ids=[i.entry_id for i in items])
    return [{"entry_id": str(i.entry_id), "sop": i.best_sop, "reason": i.error or "",
             "excerpt": " ".join(said.get(i.entry_id, "").split())[:160]} for i in items]


def _freshness(session: Session, rows: list[CalloutState]) -> float | None:
    landed = {r.callout_id: r.landed_at for r in rows if r.landed_at is not None}
    if not landed:
        return None
    pairs = session.execute(select(InsertedCallout.id, KnowledgeEntry.created_at).join(
        KnowledgeEntry, KnowledgeEntry.id == InsertedCallout.entry_ids.any_()).where(InsertedCallout.id.in_(landed))).all()
    lags = [max((landed[c] - created).total_seconds() / 86400, 0.0) for c, created in pairs]
    return round(statistics.median(lags), 3) if lags else None


def _strongest(session: Session, rows: list[CalloutState]) -> dict[str, list[dict]]:
    blocks = dict(session.execute(select(InsertedCallout.id, InsertedCallout.block).where(
        InsertedCallout.id.in_([r.callout_id for r in rows if r.helpful]))).all()) if rows else {}
    per_sop: dict[str, list[CalloutState]] = defaultdict(list)
    for r in rows:
        if r.helpful:
            per_sop[r.current_sop_path or r.sop_file_path].append(r)
    return {sop: [{"callout_id": str(r.callout_id), "helpful": r.helpful, "sources": len(r.sources or []),
                   "state": r.state, "last_seen": r.last_seen_at.isoformat() if r.last_seen_at else None,
                   "text": body_of(r.current_text or blocks.get(r.callout_id, ""))[:200]}
                  for r in sorted(rs, key=lambda r: (-r.helpful, -len(r.sources or [])))[:STRONGEST]]
            for sop, rs in sorted(per_sop.items())}


def trend(session: Session, run: SyncRun, limit: int = TREND) -> list[dict]:
    """The metrics of the last runs up to this one, oldest first."""
    rows = session.execute(select(SyncRun.id, SyncRun.run_at, RunLearning.metrics).join(
        RunLearning, RunLearning.run_id == SyncRun.id).where(SyncRun.run_at <= run.run_at)
        .order_by(SyncRun.run_at.desc()).limit(limit)).all()
    keys = ("acceptance_rate", "edit_rate", "decline_rate", "freshness_lag_days", "decided")
    return [{"run_id": str(i), "run_at": at.isoformat()} | {k: m.get(k) for k in keys} for i, at, m in reversed(rows)]


def after_run(session: Session, deps, run: SyncRun, now: datetime | None = None) -> dict | None:
    """Reinforce from the run's redundant entries, then record its metrics (never fails the run)."""
    now = now or datetime.now(UTC)

    def step() -> dict:
        reinforced = reinforce(session, run, now)
        metrics = compute(session, run, now) | {"reinforced_this_run": reinforced}
        row = session.get(RunLearning, run.id)
        if row is None:
            session.add(RunLearning(run_id=run.id, metrics=metrics))
        else:
            row.metrics = metrics
        session.flush()
        return metrics

    return learning.guarded(session, run, "learning metrics", step)


def section(session: Session, run: SyncRun) -> dict | None:
    """The report's learning section: this run's metrics and the trend."""
    row = session.get(RunLearning, run.id)
    return None if row is None else dict(row.metrics) | {"trend": trend(session, run)}


def overview(session: Session, now: datetime | None = None) -> dict[str, dict]:
    """Per SOP: confidences by category and by section, strongest callouts, lessons (`playbook-sync sops`)."""
    now = now or datetime.now(UTC)
    rows = list(session.scalars(select(CalloutState)))
    tables = learning.tables(session, now)
    out: dict[str, dict] = defaultdict(lambda: {"category": {}, "section": {}, "callouts": Counter()})
    for name, table in tables.items():
        for (sop, key), (value, kept, declined) in table.items():
            out[sop][name][key] = {"confidence": round(value, 4), "kept": round(kept, 2), "declined": round(declined, 2)}
    for r in rows:
        out[r.sop_file_path]["callouts"][r.state] += 1
    strongest = _strongest(session, rows)
    taught = lessons.top_many(session, out, now=now)
    return {sop: v | {"strongest": strongest.get(sop, []), "lessons": taught[sop]} for sop, v in sorted(out.items())}




SUGGEST_SOURCES = 3  # independent sources behind a callout before its text is proposed for the step itself


def suggestions(session: Session, min_sources: int = SUGGEST_SOURCES) -> str:
    """Pull request body text proposing step-text changes for callouts many sources back; never committed.

    Folding a callout into the step rewrites the step, which is not additive: a person decides."""
    rows = session.execute(select(CalloutState, InsertedCallout.block).join(
        InsertedCallout, InsertedCallout.id == CalloutState.callout_id).where(
        CalloutState.state.in_([State.pending, State.kept, State.edited]))).all()
    strong = sorted(((s, b) for s, b in rows if len(s.sources or []) >= min_sources),
                    key=lambda sb: (-len(sb[0].sources), sb[0].sop_file_path))
    if not strong:
        return ""
    lines = [f'- `{s.current_sop_path or s.sop_file_path}`, section "{s.current_section or s.section}": '
             f'"{body_of(s.current_text or b)[:240]}" is backed by {len(s.sources)} independent sources '
             f"({s.helpful} repeats); consider making it part of the step text." for s, b in strong[:10]]
    return "\n\n**Suggested step-text changes** (not committed; a person decides):\n" + "\n".join(lines)
