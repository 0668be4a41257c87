"""The learning loop's hooks into a run: survival before the edits, confidence-ranked slots, holds.

finalize calls before_edits (survival + lessons) once it holds the run, plan() where it fills
each SOP's per-run slots, and learning_metrics.after_run when the run is closed. None of them
can fail a run: an error is logged in the run's log and the run goes on as before issue 14.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from playbook_sync import callouts, confidence, costs, lessons, lifecycle, restatements, store, survival
from playbook_sync.models import InsertedCallout, RunItem, SyncRun
from playbook_sync.models_learning import CalloutState
from playbook_sync.schemas import Action, ItemStatus

log = logging.getLogger(__name__)


def guarded(session: Session, run: SyncRun, what: str, call, default=None):
    """call() in a savepoint; on an error, log it on the run and return default (the run goes on)."""
    try:
        with session.begin_nested():
            return call()
    except Exception as exc:
        log.warning("learning step %s failed: %s", what, exc, exc_info=True, extra={"run_id": str(run.id)})
        lifecycle.append_log(run, f"learning: {what} skipped: {type(exc).__name__}: {exc}"[:500])
        return default


def trees(repo, docs_root: str) -> list[tuple[str, survival.Tree]]:
    """The base branch's tree, then an open review branch's (pull request mode).

    Pull request mode is recognised by shape, not by isinstance(publish.PullRequestRepo):
    publish imports this package (the pull request body's suggestions), so the reverse would loop.
    """
    base = getattr(repo, "base", None)
    if base is None or not hasattr(repo, "open_pull_request"):
        return [("base", survival.Tree(repo.read_tree(docs_root, repo.head()), docs_root))]
    out = [("base", survival.Tree(base.read_tree(docs_root, base.head()), docs_root))]
    review = base.branch_head(repo.branch) if repo.open_pull_request() is not None else None
    if review:
        out.append(("review", survival.Tree(base.read_tree(docs_root, review), docs_root)))
    return out


def before_edits(session: Session, deps, run: SyncRun, now: datetime | None = None) -> int:
    """Judge every earlier callout on the branch head, then learn lessons from the changes; return how many changed."""
    now = now or datetime.now(UTC)

    def step() -> int:
        found = trees(deps.repo, deps.settings.docs_root)
        changes = survival.observe(session, trees=found, now=now, sha=run.base_sha,
                                   landed_immediately=len(found) == 1 and not hasattr(deps.repo, "open_pull_request"))
        with costs.metered(session, deps.ledger, run_id=run.id, apart=True):  # the lessons calls (real providers)
            lessons.learn(session, changes, now=now, llm=deps.llm)
        return len(changes)

    return guarded(session, run, "callout survival", step, 0)


# -- confidence per (SOP, category) and (SOP, section) ----------------------------------------


def observations(row: CalloutState) -> tuple[bool | None, bool | None]:
    """(kept? for its (SOP, category), kept? for its (SOP, section)); None when undecided.

    Moved within its SOP: kept for the category, declined for the section it was put in.
    Moved to another SOP: declined for both (it did not belong where we put it).
    """
    state = survival.State(row.state)
    if state not in survival.DECIDED:
        return None, None
    if state == survival.State.moved:
        return row.current_sop_path == row.sop_file_path, False
    accepted = state in survival.ACCEPTED
    return accepted, accepted


def tables(session: Session, now: datetime | None = None, paths=None) -> dict[str, dict]:
    """{"category": {(sop, category): (confidence, kept, declined)}, "section": {(sop, section): ...}}."""
    now = now or datetime.now(UTC)
    stmt = select(CalloutState)
    if paths is not None:
        stmt = stmt.where(CalloutState.sop_file_path.in_(list(paths)))
    obs: dict[str, dict[tuple[str, str], list]] = {"category": defaultdict(list), "section": defaultdict(list)}
    for row in session.scalars(stmt):
        by_category, by_section = observations(row)
        when = row.decided_at or now
        if by_category is not None:
            obs["category"][(row.sop_file_path, row.category)].append((by_category, when))
            obs["section"][(row.sop_file_path, row.section)].append((by_section, when))
    out: dict[str, dict] = {}
    for name, groups in obs.items():
        out[name] = {}
        for key, seen in groups.items():
            kept, declined = confidence.decayed_counts(seen, now)
            out[name][key] = (confidence.confidence(kept, declined), kept, declined)
    return out


def of(table: dict, key: tuple[str, str]) -> float:
    """A key's confidence; the cold start when nothing about it was decided yet."""
    return table[key][0] if key in table else confidence.COLD_START


# -- slots ----------------------------------------------------------------------------------


def plan(session: Session, settings, run: SyncRun, per_sop: dict[str, list], categories: dict[uuid.UUID, str],
         docs: dict | None = None, now: datetime | None = None) -> dict[str, list]:
    """Order each SOP's enrich matches by confidence (category, then section) and hold those below the floor.

    A held match is not written: its action becomes `held`; an entry all of whose enrich
    matches are held ends `held` (final, owed to nobody) with the reason, listed for review
    in the report. Matches the classifier was surer of go first among equals.
    """
    def step() -> dict[str, list]:
        conf = tables(session, now, paths=per_sop)
        floor = settings.min_callout_confidence
        ordered, held = {}, {}
        removed = removed_callouts(session, list(per_sop))  # one query for every SOP, not one per SOP
        for path, ms in per_sop.items():
            again = restating_removed(session, path, (docs or {}).get(path), [m.knowledge_entry_id for m in ms],
                                      removed=removed.get(path, []))
            for m in ms:
                if m.knowledge_entry_id in again:
                    m.action = Action.held
                    held[m.knowledge_entry_id] = again[m.knowledge_entry_id]
            ms = [m for m in ms if m.knowledge_entry_id not in again]
            def score(m, path=path):
                category = categories.get(m.knowledge_entry_id, "")
                return (of(conf["category"], (path, category)), of(conf["section"], (path, _section(docs, path, category, m))),
                        m.confidence or 0.0)

            keep = []
            for m in sorted(ms, key=score, reverse=True):
                value = score(m)[0]
                if value < floor:
                    m.action = Action.held
                    held[m.knowledge_entry_id] = (f"held for review: confidence {value:.3f} of "
                                                  f"{categories.get(m.knowledge_entry_id)} callouts in {path} "
                                                  f"is below {floor}")
                else:
                    keep.append(m)
            ordered[path] = keep
        writing = {m.knowledge_entry_id for ms in ordered.values() for m in ms}
        hold(session, run.id, {e: why for e, why in held.items() if e not in writing})
        return ordered

    return guarded(session, run, "confidence ranking", step, per_sop)


def removed_callouts(session: Session, paths: list[str]) -> dict[str, list[tuple]]:
    """path → (block, written at, removed at) of each callout an editor removed from that SOP."""
    out: dict[str, list[tuple]] = defaultdict(list)
    if paths:
        for path, block, written, gone in session.execute(
                select(CalloutState.sop_file_path, InsertedCallout.block, InsertedCallout.created_at, CalloutState.decided_at)
                .join(CalloutState, CalloutState.callout_id == InsertedCallout.id)
                .where(CalloutState.sop_file_path.in_(paths), CalloutState.state == survival.State.declined)):
            out[path].append((block, written, gone))
    return out


def restating_removed(session: Session, path: str, doc, entry_ids: list[uuid.UUID],
                      removed: list[tuple] | None = None) -> dict[uuid.UUID, str]:
    """entry id → why it is held: it says again what a callout an editor removed from this SOP said.

    A decline is the editor's answer to that knowledge in that SOP, whoever says it next: writing a
    restatement back would undo their edit one run later (F11). Held, not dropped: a final outcome
    listed for review, where a person can still decide otherwise. `removed` is removed_callouts()[path]
    when the caller looked them up for several SOPs at once.
    """
    if doc is None or not entry_ids:
        return {}
    if removed is None:
        removed = removed_callouts(session, [path]).get(path, [])
    if not removed:
        return {}
    from playbook_sync.providers.offline import OfflineEmbedder  # lexical features only: no model, no network

    blocks = {block: (written, gone) for block, written, gone in removed}
    out = {}
    for entry_id, text in store.entry_contents(session, entry_ids=entry_ids).items():
        body = restatements.restated_removal(text, doc.content, list(blocks), OfflineEmbedder.features)
        if body is not None:
            written, gone = next(v for b, v in blocks.items() if body in restatements.split(b)[0])
            seen = f", found removed {gone:%Y-%m-%d}" if gone else ""
            out[entry_id] = (f"held for review: restates a callout an editor removed from {path} "
                             f"(written {written:%Y-%m-%d}{seen}): {body[:160]}")[:2000]
    return out


def _section(docs: dict | None, path: str, category: str, match) -> str:
    """The heading a callout for this match would go under (as recorded for written ones), else the classifier's hint."""
    doc = (docs or {}).get(path)
    if doc is None or not category:
        return match.section or ""
    return callouts.choose_section(doc, callouts.kind_for(category), match.section).heading


def hold(session: Session, run_id: uuid.UUID, reasons: dict[uuid.UUID, str]) -> None:
    """Matched items named in reasons end `held` (a final outcome) with the reason."""
    for item in store.items(session, run_id=run_id, status=ItemStatus.matched):
        if item.entry_id in reasons:
            item.status, item.error = ItemStatus.held, reasons[item.entry_id][:2000]


def held_items(session: Session, run_id: uuid.UUID) -> list[RunItem]:
    return list(session.scalars(select(RunItem).where(RunItem.run_id == run_id, RunItem.status == ItemStatus.held)))
