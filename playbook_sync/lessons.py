"""Short lessons per (SOP, category), learned from what editors declined or rewrote.

Offline: deterministic rules, "editors removed N field tip callouts from this SOP". The real
providers (Anthropic, OpenAI) are asked once per SOP with changes, a small structured call
(providers/lesson_call.py); if that call fails, the rules stand in for that SOP.

A lesson that repeats an existing one (same SOP and category, text similarity >=
DUPLICATE) strengthens it (confidence.reinforce: +0.5, decayed, dampened for 5 minutes)
instead of adding a row; a callout of that kind kept later counts against it. The top
TOP_K by confidence.lesson_score go into that SOP's classify and edit prompts, in the
per-call task part, after the cached system and SOP parts.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from playbook_sync import confidence
from playbook_sync.models import InsertedCallout
from playbook_sync.models_learning import CalloutState, Lesson
from playbook_sync.providers import lesson_call
from playbook_sync.providers.structured import StructuredLLM
from playbook_sync.survival import ACCEPTED, State, body_of

log = logging.getLogger(__name__)
DUPLICATE = 0.9
TOP_K = 5
_LABEL = {"insight": "field tip", "question": "common question", "product_intel": "product intel", "outcome": "results"}


def _rules(sop_path: str, changed: list[tuple[CalloutState, State]], totals: dict[tuple[str, str], int]) -> list[tuple[str, str, str]]:
    """(category, kind, text) lessons from one SOP's changes, by fixed rules."""
    out = []
    for category in sorted({row.category for row, _ in changed}):
        label = _LABEL.get(category, category)
        declined = [r for r, _ in changed if r.category == category and _away(r)]
        edited = [r for r, _ in changed if r.category == category and r.state == State.edited]
        if declined:
            n = totals[(sop_path, category)]
            out.append((category, "declined", f"Editors removed {n} {label} callout{'s' * (n != 1)} from this SOP: "
                        f"propose one here only when the entry adds a step detail the SOP lacks."))
        for r in edited[:2]:
            text = body_of(r.current_text or "")[:200]
            out.append((category, "edited", f"Editors rewrote a {label} callout here to read: \"{text}\"; "
                        f"match that length and tone."))
    return out


def _away(row: CalloutState) -> bool:
    """Declined, or moved out of its SOP: either way editors did not want it where we put it."""
    return row.state == State.declined or (row.state == State.moved and row.current_sop_path != row.sop_file_path)


def learn(session: Session, changes: list[tuple[CalloutState, State]], *, now: datetime, llm=None) -> int:
    """Turn this run's survival changes into lessons; return how many were added or strengthened."""
    by_sop: dict[str, list[tuple[CalloutState, State]]] = defaultdict(list)
    for row, previous in changes:
        by_sop[row.sop_file_path].append((row, previous))
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for row in session.scalars(select(CalloutState)):
        totals[(row.sop_file_path, row.category)] += _away(row)
    touched = 0
    written = _written(session, [r.callout_id for r, _ in changes])
    for sop_path, changed in sorted(by_sop.items()):
        kept = {r.category for r, _ in changed if r.state in ACCEPTED}
        for lesson in _lessons_of(session, sop_path, kept):
            lesson.contradictions += 1
        interesting = [(r, p) for r, p in changed if _away(r) or r.state == State.edited]
        if not interesting:
            continue
        found = _rules(sop_path, interesting, totals)
        if isinstance(llm, StructuredLLM):
            try:
                found = lesson_call.extract(llm, sop_path, [_change(r, written) for r, _ in interesting])
            except Exception as exc:  # a lesson is never worth a run: the rules stand in
                log.warning("lessons call for %s failed, rules used: %s", sop_path, exc)
        for category, kind, text in found:
            touched += remember(session, sop_path=sop_path, category=category, kind=kind, text=text, now=now)
    session.flush()
    return touched


def _written(session: Session, ids: list) -> dict:
    return dict(session.execute(select(InsertedCallout.id, InsertedCallout.block).where(InsertedCallout.id.in_(ids))).all())


def _change(row: CalloutState, written: dict) -> dict[str, str]:
    now = body_of(row.current_text) if row.current_text else ""
    return {"category": row.category, "state": row.state, "written": body_of(written.get(row.callout_id, ""))[:300],
            "now": now[:300]}


def _lessons_of(session: Session, sop_path: str, categories: set[str]) -> list[Lesson]:
    if not categories:
        return []
    return list(session.scalars(select(Lesson).where(Lesson.sop_file_path == sop_path, Lesson.category.in_(categories))))


def remember(session: Session, *, sop_path: str, category: str, kind: str, text: str, now: datetime) -> int:
    """Add a lesson, or strengthen the one it repeats (similarity >= DUPLICATE); 0 when dampened."""
    for lesson in _lessons_of(session, sop_path, {category}):
        if difflib.SequenceMatcher(None, lesson.text.casefold(), text.casefold()).ratio() >= DUPLICATE:
            if confidence.is_stable(lesson.updated_at, now):
                return 0  # the stability dampener: a lesson younger than 5 minutes is not overwritten
            lesson.strength = confidence.reinforce(lesson.strength, lesson.updated_at, now)
            lesson.confirmations += 1
            lesson.text, lesson.text_hash, lesson.updated_at = text, _hash(text), now
            return 1
    session.add(Lesson(sop_file_path=sop_path, category=category, kind=kind, text=text, text_hash=_hash(text),
                       strength=1.0, confirmations=1, contradictions=0, created_at=now, updated_at=now))
    return 1


def _hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.casefold().split()).encode()).hexdigest()


# Only what the ranking reads, as plain rows: the callers read lessons, and mapped objects in the session cost a
# worker more CPU than the query (issue 12: top_for runs on the per-entry path).
_RANKED = (Lesson.sop_file_path, Lesson.text, Lesson.strength, Lesson.confirmations, Lesson.contradictions,
           Lesson.updated_at)


def _best(rows, now: datetime, k: int) -> list[str]:
    ranked = sorted(rows, key=lambda x: -confidence.lesson_score(x.strength, x.confirmations, x.contradictions,
                                                                 x.updated_at, now))
    return [x.text for x in ranked[:k]]


def top(session: Session, sop_path: str, *, now: datetime | None = None, category: str | None = None, k: int = TOP_K) -> list[str]:
    """The k best lessons for an SOP (and category), by weight × confidence × recency."""
    return top_many(session, [sop_path], now=now, category=category, k=k)[sop_path]


def top_many(session: Session, paths, *, now: datetime | None = None, category: str | None = None,
             k: int = TOP_K) -> dict[str, list[str]]:
    """path → top(session, path): the same lessons, in one query for all the paths (finalize asks for every SOP it
    edits, the per-entry path for every candidate)."""
    now = now or datetime.now(UTC)
    mine: dict[str, list] = {p: [] for p in sorted(set(paths))}  # sorted: the metrics record keeps a stable order
    if mine:
        stmt = select(*_RANKED).where(Lesson.sop_file_path.in_(list(mine)))
        if category is not None:
            stmt = stmt.where(Lesson.category == str(category))
        for row in session.execute(stmt):
            mine[row.sop_file_path].append(row)
    return {p: _best(rows, now, k) for p, rows in mine.items()}


def top_for(session: Session, paths: list[str], category: str, *, now: datetime | None = None) -> dict[str, list[str]]:
    """path → the top lessons of each SOP for the entry's category (one query for all of them)."""
    return top_many(session, paths, now=now, category=category)
