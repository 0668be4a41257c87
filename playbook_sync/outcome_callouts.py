"""Outcome evidence per SOP from the database, and the weekly run's `Results From the Field` callouts.

The SOP a report counts for comes from the SOP's frontmatter (`playbook_ids: [voc-sprint]`).
One aggregate callout per SOP: when its evidence is new or has changed materially
(evidence.material_change) against the evidence of the last one committed, a new aggregate
replaces that one in place (retire.py); one a person removed or rewrote holds the SOP's
aggregate instead (plan). The same reports never write a second one. The arithmetic is in evidence.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, defer

from playbook_sync import callouts, learning, lifecycle
from playbook_sync.evidence import ReportFacts, SopEvidence, aggregate, material_change, parse_outcomes, summary_text
from playbook_sync.models import InsertedCallout, SopEmbedding
from playbook_sync.models_reports import OutcomeCallout, PlaybookReport
from playbook_sync.retire import retire_blocks
from playbook_sync.schemas import CalloutKind, Category, EntryIn, SopDoc, TranscriptType
from playbook_sync.sops import read_frontmatter

# Where the aggregate reads best: a results/outcomes section, else the reasons the SOP exists.
_HINTS = ("results", "outcomes", "metrics", "why this matters", "key principles")


def _frontmatter(path: str, content: str) -> dict:
    front = read_frontmatter(path, content.splitlines(keepends=True))
    return getattr(front, "meta", {})


def playbook_ids(path: str, content: str, extra: Mapping[str, list[str]] | None = None) -> list[str]:
    """The playbook ids mapped to an SOP: its frontmatter `playbook_ids` (a list or one string), then those the
    PLAYBOOK_SOPS setting (`extra`) maps to its id or path; [] when none or the frontmatter is unreadable."""
    meta = _frontmatter(path, content)
    value = meta.get("playbook_ids")
    values = [value] if isinstance(value, str | int) else value if isinstance(value, list) else []
    ids = [str(v).strip() for v in values if isinstance(v, str | int) and str(v).strip()]
    names = {path, str(meta.get("id", ""))}
    ids += [p for p, sops in (extra or {}).items() if names & set(sops) and p not in ids]
    return ids


def mapping(contents: Mapping[str, str], extra: Mapping[str, list[str]] | None = None) -> dict[str, list[str]]:
    """SOP path → the playbook ids mapped to it (SOPs without any left out)."""
    return {path: ids for path, content in contents.items() if (ids := playbook_ids(path, content, extra))}


def facts(session: Session, playbooks: list[str]) -> dict[str, list[ReportFacts]]:
    """playbook id → its reports as evidence needs them."""
    out: dict[str, list[ReportFacts]] = {p: [] for p in playbooks}
    if not playbooks:
        return out
    rows = session.execute(select(
        PlaybookReport.report_id, PlaybookReport.playbook_id, PlaybookReport.status, PlaybookReport.steps_completed,
        PlaybookReport.total_steps, PlaybookReport.report_data, PlaybookReport.completed_at,
        PlaybookReport.report_generated_at, PlaybookReport.started_at, PlaybookReport.created_at,
    ).where(PlaybookReport.playbook_id.in_(playbooks)))
    for rid, pid, status, steps, total, data, completed, generated, started, created in rows:
        out[pid].append(ReportFacts(report_id=rid, status=status, when=completed or generated or started or created,
                                    steps_completed=steps, total_steps=total,
                                    outcomes=tuple(parse_outcomes(data or {})) if status == "completed" else ()))
    return out


def evidence(session: Session, contents: Mapping[str, str], *, now: datetime, period_days: int,
             extra: Mapping[str, list[str]] | None = None) -> dict[str, SopEvidence]:
    """SOP path → its evidence over the period, for every SOP with mapped playbooks."""
    mapped = mapping(contents, extra)
    by_playbook = facts(session, sorted({p for ids in mapped.values() for p in ids}))
    return {path: aggregate([f for p in ids for f in by_playbook[p]], now=now, period_days=period_days)
            for path, ids in mapped.items()}


def published(session: Session, sop_path: str) -> dict | None:
    """The evidence of the SOP's last outcome callout that landed in a commit, if any."""
    last = latest(session, sop_path)
    return last[1] if last else None


def committed(session: Session, sop_path: str) -> list[tuple[InsertedCallout, dict]]:
    """The SOP's aggregates that landed in a commit, newest first, each with its evidence."""
    return [(callout, ev) for callout, ev in session.execute(
        select(InsertedCallout, OutcomeCallout.evidence)
        .join(OutcomeCallout, (InsertedCallout.sop_file_path == OutcomeCallout.sop_file_path)
              & (InsertedCallout.block_hash == OutcomeCallout.block_hash))
        .where(OutcomeCallout.sop_file_path == sop_path, InsertedCallout.commit_sha.is_not(None))
        .order_by(InsertedCallout.created_at.desc(), InsertedCallout.id))]


def latest(session: Session, sop_path: str) -> tuple[InsertedCallout, dict] | None:
    """The SOP's last committed aggregate with its evidence: the one an update replaces, or a person judged."""
    found = committed(session, sop_path)
    return found[0] if found else None


def render(doc: SopDoc, ev: SopEvidence, playbooks: list[str]) -> str:
    """The callout block: the aggregate in 1-2 sentences, attributed to the reports."""
    until = ev.until[:10]
    source = f"{ev.executions} execution report{'s' if ev.executions != 1 else ''} of {', '.join(playbooks)}, to {until}"
    return callouts.render_block(CalloutKind.results, summary_text(ev), {TranscriptType.report}, source)


def plan(session: Session, deps, run, docs: Mapping[str, SopDoc], *, now: datetime | None = None) -> list:
    """At most one aggregate per SOP, replacing the earlier one in place (finalize adds them to its blocks).

    The rule (README, "Outcome evidence"): a new aggregate is planned when the evidence changed
    materially against the last one committed, that one is still in the SOP exactly as we wrote it,
    and the learning loop's (SOP, outcome) confidence is not below MIN_CALLOUT_CONFIDENCE. An
    aggregate a person removed (a decline) or rewrote holds the SOP's aggregate until a person puts
    ours back: we never write back what an editor took out, nor overwrite their words.
    """
    from playbook_sync.edits import PlannedBlock

    now = now or datetime.now(UTC)
    settings = deps.settings
    planned = []
    all_evidence = evidence(session, {p: d.content for p, d in docs.items()}, now=now,
                            period_days=settings.evidence_period_days, extra=settings.playbook_sops)
    trust = learning.tables(session, now, paths=all_evidence)["category"] if all_evidence else {}
    for path, ev in sorted(all_evidence.items()):
        doc = docs[path]
        ours = committed(session, path)
        if not material_change(ours[0][1] if ours else None, ev, min_change=settings.evidence_min_change):
            continue
        if (why := _held(doc, ours, learning.of(trust, (path, Category.outcome.value)), settings.min_callout_confidence)):
            lifecycle.append_log(run, f"{path}: Results From the Field held: {why}")
            continue
        block = render(doc, ev, playbook_ids(path, doc.content, settings.playbook_sops))
        digest = callouts.block_hash(block)
        written = session.scalar(select(InsertedCallout.id).where(InsertedCallout.sop_file_path == path,
                                                                  InsertedCallout.block_hash == digest).limit(1))
        if written is not None or callouts.contains_block(doc.content, block):
            continue  # these exact words are in the SOP already (or were, until a person removed them)
        # Every aggregate of ours still in the SOP as written goes (duplicates an earlier version left too);
        # the new one takes the last one's section, where an editor may have moved it.
        live = [c.block for c, _ in ours if _as_written(doc, c.block)]
        hint = _section_of(doc, ours[0][0].block) if ours else None
        hint = hint or next((s.heading for h in _HINTS for s in doc.sections if s.level and h in s.heading.casefold()), None)
        section = callouts.choose_section(doc, CalloutKind.results, hint)
        # `replaces` tells survival that these blocks went with our update, not by a person's hand (a decline).
        record = ev.to_dict() | {"replaces": [callouts.block_hash(b) for b in live]}
        stmt = insert(OutcomeCallout).values(sop_file_path=path, block_hash=digest, evidence=record, run_id=run.id)
        session.execute(stmt.on_conflict_do_update(index_elements=["sop_file_path", "block_hash"],
                                                   set_={"evidence": stmt.excluded.evidence, "run_id": run.id}))
        planned.append(PlannedBlock(path, section.heading, CalloutKind.results, block, [], replaces=tuple(live)))
    return planned


def _held(doc: SopDoc, ours: list[tuple[InsertedCallout, dict]], trust: float, floor: float) -> str | None:
    """Why the SOP's aggregate may not be written now, or None."""
    if ours and not _as_written(doc, ours[0][0].block):
        when = f"{ours[0][0].created_at:%Y-%m-%d}"
        return (f"the aggregate written on {when} was removed or rewritten by an editor; it is not written back "
                "(put it back as it was to let runs update it again)")
    if trust < floor:
        return f"confidence {trust:.3f} of outcome callouts here is below {floor}"
    return None


def _as_written(doc: SopDoc, block: str) -> bool:
    """The block is in the SOP exactly as we wrote it, so replacing it touches nothing of anyone else's."""
    try:
        retire_blocks(doc.content, [block])
    except ValueError:
        return False
    return True


def _section_of(doc: SopDoc, block: str) -> str | None:
    """The heading of the section holding the block's opener line (its first copy), if it is in the SOP."""
    lines = doc.content.splitlines()
    opener, body = block.splitlines()[:2]
    at = next((i for i in range(len(lines) - 1) if lines[i].strip() == opener and lines[i + 1].strip() == body.strip()), None)
    return next((s.heading for s in doc.sections if s.level and at is not None and s.start_line <= at < s.end_line), None)


def for_run(session: Session, run_id) -> list[dict]:
    """The run report's evidence: each outcome callout the run planned, its numbers and whether it landed."""
    rows = session.execute(
        select(OutcomeCallout.sop_file_path, OutcomeCallout.evidence, InsertedCallout.commit_sha, InsertedCallout.block)
        .outerjoin(InsertedCallout, (InsertedCallout.sop_file_path == OutcomeCallout.sop_file_path)
                   & (InsertedCallout.block_hash == OutcomeCallout.block_hash))
        .where(OutcomeCallout.run_id == run_id).order_by(OutcomeCallout.sop_file_path))
    return [{"sop": path, "evidence": ev, "committed": sha is not None, "block": block} for path, ev, sha, block in rows]


def stats(session: Session, settings, sop: str | None = None, *, now: datetime | None = None) -> list[dict]:
    """Evidence per SOP of the synced playbook (all mapped SOPs, or the one whose id or path is `sop`)."""
    now = now or datetime.now(UTC)
    stmt = select(SopEmbedding.file_path, SopEmbedding.sop_id, SopEmbedding.title, SopEmbedding.content)
    if sop is not None:
        stmt = stmt.where((SopEmbedding.sop_id == sop) | (SopEmbedding.file_path == sop))
    rows = {path: (sop_id, title, content) for path, sop_id, title, content in session.execute(stmt)}
    if sop is not None and not rows:
        raise LookupError(f"no SOP {sop!r} in the synced playbook (give its frontmatter id or its path; a run syncs SOPs)")
    found = evidence(session, {p: c for p, (_, _, c) in rows.items()}, now=now, period_days=settings.evidence_period_days,
                     extra=settings.playbook_sops)
    if sop is not None and not found:
        path = next(iter(rows))
        found = {path: aggregate([], now=now, period_days=settings.evidence_period_days)}
    return [{"sop": path, "sop_id": rows[path][0], "title": rows[path][1],
             "playbook_ids": playbook_ids(path, rows[path][2], settings.playbook_sops),
             "summary": summary_text(ev) if ev.metrics else None, **ev.to_dict()} for path, ev in sorted(found.items())]


# -- reports no SOP maps: knowledge like any entry ---------------------------------------------

ENTRY_NAMESPACE = uuid.UUID("0d9d8f3e-58a4-5b0e-8c1e-7f2b6a13e013")


def unmapped_entries(session: Session, extra: Mapping[str, list[str]] | None = None) -> list[EntryIn]:
    """An `outcome` entry (transcript_type report) per completed report of a playbook no synced SOP maps.

    Its id is derived from the report and its text, so a run never adds the same one twice and
    an updated report (new outcomes) is new knowledge. Mapped playbooks feed the aggregate instead.
    """
    contents = dict(session.execute(select(SopEmbedding.file_path, SopEmbedding.content)).all())
    mapped = {p for ids in mapping(contents, extra).values() for p in ids}
    rows = session.scalars(select(PlaybookReport).options(defer(PlaybookReport.embedding))
                           .where(PlaybookReport.status == "completed", PlaybookReport.playbook_id.not_in(mapped))
                           .order_by(PlaybookReport.report_id))
    out = []
    for r in rows:
        body = (r.body or "").strip()
        if not body:
            continue
        when = r.completed_at or r.report_generated_at
        out.append(EntryIn(id=uuid.uuid5(ENTRY_NAMESPACE, f"{r.report_id}\n{body}"), category=Category.outcome,
                           content=body[:20_000], transcript_type=TranscriptType.report, tags=[r.playbook_id[:200]],
                           context=f"Execution report {r.report_id} of {r.playbook_name or r.playbook_id} ({r.status})",
                           speaker=(r.account_name or r.account_id)[:200], source_ref=f"report:{r.report_id}"[:500],
                           created_at=when))
    return out


def prepare(session: Session, deps) -> int:
    """At a run's start: re-embed reports whose text or model changed (the SOP cache rule; e.g. a new embedder),
    and store the unmapped reports' outcome entries (ids already stored are skipped); how many entries were new."""
    from playbook_sync import store
    from playbook_sync.reports import embed_reports

    embed_reports(session, deps.embedder)
    return store.upsert_entries(session, entries=unmapped_entries(session, deps.settings.playbook_sops))
