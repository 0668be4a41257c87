"""What became of each callout we wrote: kept, edited by a person, moved, declined.

Every run, before it edits, reads the branch head and finds each committed callout
(cp_inserted_callouts) there. Matching is by content, never by commit: a rebase, a squash
merge or a force push rewrites history, and only what the tree holds tells what a person
kept. In order, for each callout:

1. the same block (block_hash) in its SOP: kept (moved, when in another section);
2. the same block in another SOP, a copy no callout of that SOP accounts for: moved;
3. an admonition in its SOP that no tracked block explains, whose body is close to the
   callout's (EDIT_SIMILARITY of the characters, or WORD_OVERLAP of the content words; a
   rewrite in place, same opener and section, needs only PLACE_OVERLAP of the words): edited,
   and the person's text is stored. Words, not characters, for the looser rules: two
   unrelated English sentences share a third of their characters, but hardly any words;
4. such an admonition in another SOP (MOVE_SIMILARITY, stricter): moved, with its text;
   in 2 and 4, when the callout's own SOP is gone, the SOP was renamed (or split): kept, or
   edited with its text, since a rename judges no callout;
5. else declined when its SOP is still there, sop_deleted when the SOP is gone (deleting a
   whole SOP says nothing about one callout, so it counts neither way; a callout declined before
   its SOP went stays declined), and replaced when it is a `Results From the Field` aggregate
   that a newer aggregate of ours replaced in a landed commit (outcome_callouts.plan): our own
   update, not a person's decline, so it counts neither way either.

Pull request mode: what is on the base branch decides (a merge lands it); a callout only on
the open review branch is pending, and one that is on neither (removed on the review
branch, or its pull request closed unmerged) is declined.
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from playbook_sync import callouts
from playbook_sync.models import InsertedCallout, KnowledgeEntry
from playbook_sync.models_learning import CalloutState
from playbook_sync.models_reports import OutcomeCallout
from playbook_sync.sops import SopError, is_doc, parse_sop

EDIT_SIMILARITY = 0.6
WORD_OVERLAP = 0.5
PLACE_OVERLAP = 0.25
MOVE_SIMILARITY = 0.8
_CONTENT_WORD = re.compile(r"[a-z0-9%]{4,}")
_OPENER = re.compile(r"^:::[A-Za-z]+\b")
_CLOSER = re.compile(r"^:::\s*$")
_KIND_CATEGORY = {"tip": "insight", "warning": "question", "info": "product_intel", "note": "outcome"}


class State(StrEnum):
    pending = "pending"  # not decided yet (on an open review branch; or not checked yet)
    kept = "kept"
    edited = "edited"  # kept, with a person's changes
    moved = "moved"  # to another section or SOP
    declined = "declined"  # removed, or its pull request closed unmerged
    sop_deleted = "sop_deleted"  # its whole SOP is gone: counts neither way
    replaced = "replaced"  # an aggregate a newer one of ours replaced (retire.py): we took it out, counts neither way


ACCEPTED = frozenset({State.kept, State.edited})
DECIDED = frozenset({State.kept, State.edited, State.moved, State.declined})


@dataclass
class Admonition:
    path: str
    line: int  # 0-based line of the opener
    text: str  # the block, lines joined by \n
    body: str
    section: str | None


@dataclass
class Found:
    state: State
    path: str | None = None
    section: str | None = None
    text: str | None = None


class Tree:
    """The docs of one tree with their admonitions, indexed for finding callouts."""

    def __init__(self, files: dict[str, bytes], docs_root: str) -> None:
        self.paths = {p for p in files if is_doc(p, docs_root)}
        self.blocks: dict[str, list[Admonition]] = {p: _admonitions(p, files[p]) for p in sorted(self.paths)}
        self.by_hash: dict[str, list[Admonition]] = {}
        for found in self.blocks.values():
            for a in found:
                self.by_hash.setdefault(callouts.block_hash(a.text), []).append(a)
                # A re-wrap (prettier's proseWrap, an editor's fill) splits lines differently but
                # says the same words: the same opener and body, spacing aside, is the same block.
                self.by_hash.setdefault(_content_key(a.text), []).append(a)


def _admonitions(path: str, raw: bytes) -> list[Admonition]:
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    try:
        sections = [s for s in parse_sop(path, raw).sections if s.level]
    except SopError:
        sections = []
    out, start = [], None
    for i, line in enumerate(lines):
        if start is None and _OPENER.match(line.strip()):
            start = i
        elif start is not None and _CLOSER.match(line.strip()):
            section = next((s.heading for s in sections if s.start_line <= start < s.end_line), None)
            body = " ".join(x.strip() for x in lines[start + 1 : i] if x.strip())
            out.append(Admonition(path, start, "\n".join(lines[start : i + 1]), body, section))
            start = None
    return out


def _content_key(block: str) -> str:
    """The block's opener and body with all spacing collapsed (line breaks included)."""
    return "wrap:" + " ".join(block.split("\n", 1)[0].split()) + "|" + " ".join(body_of(block).split())


def body_of(block: str) -> str:
    return " ".join(line.strip() for line in block.splitlines()[1:-1] if line.strip())


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.casefold(), b.casefold(), autojunk=False).ratio() if a and b else 0.0


def _words(text: str) -> set[str]:
    return set(_CONTENT_WORD.findall(text.split(" -- ")[0].casefold()))  # without the attribution


def _overlap(a: str, b: str) -> float:
    """Shared content words over the smaller set's size."""
    x, y = _words(a), _words(b)
    return len(x & y) / min(len(x), len(y)) if x and y else 0.0


def locate(tree: Tree, callouts_: list[InsertedCallout]) -> dict[uuid.UUID, Found]:
    """Where each callout is in the tree (see the module docstring for the order of the rules)."""
    found: dict[uuid.UUID, Found] = {}
    def same_block(c: InsertedCallout) -> list[Admonition]:
        return tree.by_hash.get(c.block_hash, []) or tree.by_hash.get(_content_key(c.block), [])

    claimed = {id(a) for c in callouts_ for a in same_block(c)}
    taken: set[int] = set()  # a copy a callout of its own SOP accounts for cannot be another's move target
    for c in callouts_:
        here = [a for a in same_block(c) if a.path == c.sop_file_path]
        if here:
            a = here[0]
            taken.add(id(a))
            moved = a.section is not None and c.section and a.section != c.section
            found[c.id] = Found(State.moved if moved else State.kept, a.path, a.section)
    for c in callouts_:
        elsewhere = [a for a in same_block(c) if id(a) not in taken] if c.id not in found else []
        if elsewhere:
            taken.add(id(elsewhere[0]))
            # Its SOP gone and the block in another: the file was renamed or split, not the callout judged.
            state = State.moved if c.sop_file_path in tree.paths else State.kept
            found[c.id] = Found(state, elsewhere[0].path, elsewhere[0].section)
    for c in callouts_:
        if c.id in found:
            continue
        body, opener = body_of(c.block), c.block.split("\n", 1)[0].strip()

        def likeness(a: Admonition, body=body, opener=opener, c=c) -> float:
            """0 unless `a` passes a rule of the module docstring; else how alike the two are."""
            chars, words = _similar(body, a.body), _overlap(body, a.body)
            if a.path != c.sop_file_path:
                return chars + words if max(chars, words) >= MOVE_SIMILARITY else 0.0
            in_place = a.text.split("\n", 1)[0].strip() == opener and a.section == c.section
            passes = chars >= EDIT_SIMILARITY or words >= WORD_OVERLAP or (in_place and words >= PLACE_OVERLAP)
            return chars + words if passes else 0.0

        away = State.moved if c.sop_file_path in tree.paths else State.edited  # as above: a renamed SOP
        for paths, state in (([c.sop_file_path], State.edited), (sorted(tree.paths - {c.sop_file_path}), away)):
            pool = [a for p in paths for a in tree.blocks.get(p, []) if id(a) not in claimed and a.body]
            best = max(pool, key=likeness, default=None)
            if best is not None and likeness(best) > 0:
                claimed.add(id(best))
                found[c.id] = Found(state, best.path, best.section, best.text)
                break
        else:
            found[c.id] = Found(State.declined if c.sop_file_path in tree.paths else State.sop_deleted)
    return found


def observe(session: Session, *, trees: Iterable[tuple[str, Tree]], now: datetime, sha: str | None,
            landed_immediately: bool) -> list[tuple[CalloutState, State]]:
    """Update every committed callout's state from the trees; return (state row, previous state) for changes.

    trees: ("base", tree) first, then optionally ("review", tree) for an open pull request. A
    callout found on the base tree landed; in pull request mode (landed_immediately False) one
    found only on the review tree is pending.
    """
    rows = list(session.scalars(select(InsertedCallout).where(InsertedCallout.commit_sha.is_not(None))))
    if not rows:
        return []
    states = {s.callout_id: s for s in session.scalars(select(CalloutState).where(
        CalloutState.callout_id.in_([r.id for r in rows])))}
    categories = _categories(session, rows)
    replaced = _replaced(session, rows)
    located = [(name, locate(tree, rows)) for name, tree in trees]
    changes = []
    for r in rows:
        row = states.get(r.id)
        if row is None:
            row = CalloutState(callout_id=r.id, sop_file_path=r.sop_file_path, section=r.section,
                               category=categories.get(r.id, "insight"), state=State.pending, helpful=0,
                               reinforced_by=[], sources=[])
            session.add(row)
        previous = State(row.state)
        base = located[0][1][r.id]
        if base.state == State.sop_deleted and previous == State.declined:
            base = Found(State.declined)  # removed, then its SOP deleted or renamed: the decline stands
        if r.id in replaced and base.state in (State.declined, State.sop_deleted):
            base = Found(State.replaced)  # the newer aggregate's commit took it out (it was there as written)
        now_found = base
        if base.state not in (State.kept, State.edited, State.moved) and len(located) > 1:
            review = located[1][1][r.id]
            now_found = Found(State.pending, review.path, review.section, review.text) if review.state in (
                State.kept, State.edited, State.moved) else base
        # Commit mode: the run's commit put it on the branch, whatever a person did with it since (one
        # deleted before the next run landed too, and its lag counts); pull request mode: once seen on the base.
        if row.landed_at is None and (landed_immediately or base.state in (State.kept, State.edited, State.moved)):
            row.landed_at = r.created_at if landed_immediately else now
        row.current_sop_path, row.current_section = now_found.path, now_found.section
        row.current_text = now_found.text if now_found.state in (State.edited, State.moved) else None
        row.checked_at, row.checked_sha = now, sha
        if now_found.state != previous:
            row.state, row.decided_at = now_found.state, now
            changes.append((row, previous))
    session.flush()
    return changes


def _categories(session: Session, rows: list[InsertedCallout]) -> dict[uuid.UUID, str]:
    """Each callout's entry category (its first entry's), else the one its admonition type implies."""
    ids = {e for r in rows for e in r.entry_ids}
    by_entry = dict(session.execute(select(KnowledgeEntry.id, KnowledgeEntry.category)
                                    .where(KnowledgeEntry.id.in_(ids))).all()) if ids else {}
    out = {}
    for r in rows:
        known = [by_entry[e] for e in r.entry_ids if e in by_entry]
        kind = r.block.split("\n", 1)[0].removeprefix(":::").split(" ", 1)[0]
        out[r.id] = known[0] if known else _KIND_CATEGORY.get(kind, "insight")
    return out


def _replaced(session: Session, rows: list[InsertedCallout]) -> set[uuid.UUID]:
    """The committed aggregates a newer committed aggregate of the same SOP names as replaced (its evidence's
    `replaces`: the hashes of our blocks that were in the SOP as written when it was planned)."""
    by_key = {(r.sop_file_path, r.block_hash): r.id for r in rows}
    found = session.execute(select(OutcomeCallout.sop_file_path, OutcomeCallout.evidence).join(
        InsertedCallout, (InsertedCallout.sop_file_path == OutcomeCallout.sop_file_path)
        & (InsertedCallout.block_hash == OutcomeCallout.block_hash)).where(InsertedCallout.commit_sha.is_not(None)))
    return {by_key[(path, h)] for path, evidence in found for h in (evidence or {}).get("replaces", [])
            if (path, h) in by_key}
