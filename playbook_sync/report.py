"""The run report: what a run did, as JSON (for machines) and one self-contained HTML page (for people).

Built from the database (items, matches, callouts, clusters, LLM calls) and the playbook
repository (the diff of the run's commit), so any run's report can be rebuilt later with
`playbook-sync report RUN_ID`. A dry run's report is written before its transaction is
rolled back, and is afterwards only available as the files it wrote.
"""

from __future__ import annotations

import difflib
import json
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session, defer

from playbook_sync import learning_metrics, lifecycle, outcome_callouts, store
from playbook_sync.models import (
    InsertedCallout,
    KnowledgeEntry,
    LlmCall,
    OrphanCluster,
    OrphanMember,
    RunItem,
    SyncRun,
)
from playbook_sync.providers.base import CommitParents
from playbook_sync.schemas import ItemStatus

if TYPE_CHECKING:
    from playbook_sync.config import Settings
    from playbook_sync.providers.base import PlaybookRepo

log = logging.getLogger(__name__)
SCHEMA = 1
MAX_CLUSTERS = 12
OUTCOMES = ("enriched", "redundant", "orphaned", "deferred", "failed")


def find_run(session: Session, run_id: str) -> SyncRun:
    """A run by full id or by a unique prefix of it (as `runs` prints them)."""
    text = run_id.strip().lower()
    try:
        run = session.get(SyncRun, uuid.UUID(text))
    except ValueError:
        rows = list(session.scalars(select(SyncRun).where(cast(SyncRun.id, String).startswith(text, autoescape=True)).limit(2)))
        if len(rows) > 1:
            raise LookupError(f"run id prefix {run_id!r} is ambiguous; give more characters") from None
        run = rows[0] if rows else None
    if run is None:
        raise LookupError(f"no run {run_id!r}")
    return run


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build(session: Session, settings: Settings, repo: PlaybookRepo, run: SyncRun) -> dict[str, Any]:
    """The report of one run as a JSON-able dict (repo: where its commit's diff is read)."""
    # Counted in the database, and only the failed and deferred items read with their entries: loading every
    # item and entry of a 10,000-entry run to list a handful of problems was most of the report's CPU.
    by_status = store.item_counts(session, run_ids=[run.id]).get(run.id, {})
    counts = {"entries": sum(by_status.values())} | {o: by_status.get(o, 0) for o in OUTCOMES}
    counts["pending"] = by_status.get(ItemStatus.pending, 0) + by_status.get(ItemStatus.matched, 0)
    return {
        "schema": SCHEMA,
        "generated_at": datetime.now(UTC).isoformat(),
        "run": {
            "id": str(run.id), "status": run.status, "trigger": run.trigger, "dry_run": run.trigger == "dry-run",
            "run_at": _iso(run.run_at), "finished_at": _iso(run.finished_at),
            "window_start": _iso(run.window_start), "window_end": _iso(run.window_end),
            "embedding_model": run.embedding_model, "base_sha": run.base_sha, "commit_sha": run.commit_sha,
            "pull_request_url": run.pull_request_url, "publish": settings.publish,
            "errors": [line for line in (run.error_log or "").splitlines() if line.strip()],
        },
        "counts": counts,
        "histogram": _calibrated(run, _histogram(session, run, settings)),
        "sops": _sop_changes(session, repo, settings.docs_root, run),
        "clusters": _clusters(session, run, settings),
        "cost": _cost(session, run),
        "evidence": outcome_callouts.for_run(session, run.id),  # Results From the Field, with their numbers
        "learning": learning_metrics.section(session, run),  # issue 14: survival, confidence, lessons
        "problems": _problems(session, run),
    }


def _excerpt(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problems(session: Session, run: SyncRun) -> list[dict]:
    """The failed and deferred items (owed to the next run), each with its reason and what its entry said."""
    rows = session.execute(
        select(RunItem.entry_id, RunItem.status, RunItem.error, RunItem.best_sop, RunItem.best_score,
               KnowledgeEntry.category, KnowledgeEntry.content)
        .outerjoin(KnowledgeEntry, KnowledgeEntry.id == RunItem.entry_id)
        .where(RunItem.run_id == run.id, RunItem.status.in_([ItemStatus.failed, ItemStatus.deferred]))
        .order_by(RunItem.entry_id))
    return [{"entry_id": str(r.entry_id), "status": r.status, "reason": r.error or "", "category": r.category,
             "excerpt": _excerpt(r.content) if r.content is not None else "", "best_sop": r.best_sop,
             "best_score": r.best_score} for r in rows]


def _histogram(session: Session, run: SyncRun, settings: Settings) -> dict:
    bands = settings.bands_for(run.embedding_model)
    if run.score_histogram:
        return {"strong": bands.strong, "weak": bands.weak} | dict(run.score_histogram)
    scores = list(session.scalars(select(RunItem.best_score).where(RunItem.run_id == run.id,
                                                                   RunItem.best_score.is_not(None))))
    return lifecycle.histogram(scores) | {"strong": bands.strong, "weak": bands.weak}


def _calibrated(run: SyncRun, histogram: dict) -> dict:
    """The bands this run used (calibration.py): relative to each entry's baseline, unless pinned."""
    from playbook_sync.calibration import describe

    record = run.calibration or {}
    shown = {"calibration": describe(run.calibration), "null": record.get("null")}
    if record.get("mode") == "absolute":
        shown |= {"strong": record["strong"], "weak": record["weak"]}
    return histogram | shown


def diff_text(path: str, old: str | None, new: str | None) -> str:
    """A unified diff of one file (old None: a new file)."""
    lines = difflib.unified_diff((old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
                                 "/dev/null" if old is None else f"a/{path}", f"b/{path}", n=3)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _sop_changes(session: Session, repo: PlaybookRepo, docs_root: str, run: SyncRun) -> list[dict]:
    """Per changed or created SOP: the callouts written and the rendered diff of the commit."""
    blocks: dict[str, list[dict]] = defaultdict(list)
    for c in session.scalars(select(InsertedCallout).where(InsertedCallout.run_id == run.id).order_by(InsertedCallout.sop_file_path, InsertedCallout.created_at)):
        blocks[c.sop_file_path].append({"section": c.section, "entries": len(c.entry_ids), "block": c.block})
    created = {c.sop_file_path: c for c in session.scalars(select(OrphanCluster).where(OrphanCluster.promoted_run_id == run.id)) if c.sop_file_path}
    paths = sorted(set(run.sops_enriched or []) | set(run.sops_created or []) | set(blocks) | set(created))
    parent = None
    if run.commit_sha:
        try:
            parent = repo.parent_of(run.commit_sha) if isinstance(repo, CommitParents) else run.base_sha
        except Exception as exc:  # a report must not fail on a repository hiccup
            log.warning("report: parent of %s unknown: %s", run.commit_sha, exc)
    trees: dict[str, dict[str, bytes]] = {}

    def read(path: str, ref: str | None) -> str | None:
        # Each side's docs tree read once (one git process, or one API walk), not two reads per file.
        if ref is None:
            return None
        if ref not in trees:
            trees[ref] = repo.read_tree(docs_root, ref)
        raw = trees[ref].get(path)
        return None if raw is None else raw.decode("utf-8", "replace")

    out = []
    for path in paths:
        diff, error = "", None
        if run.commit_sha:
            try:
                diff = diff_text(path, read(path, parent) if path not in created else None, read(path, run.commit_sha))
            except Exception as exc:
                error = f"diff unavailable: {exc}"
        cluster = created.get(path)
        out.append({
            "path": path, "new": cluster is not None, "label": cluster.label if cluster else None,
            "callouts": blocks.get(path, []), "diff": diff, "diff_error": error,
            "added": sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")),
        })
    return out


def _clusters(session: Session, run: SyncRun, settings: Settings) -> dict:
    """Open orphan clusters, closest to promotion first, and the ones this run promoted."""
    rows = session.execute(
        select(OrphanCluster, KnowledgeEntry, OrphanMember.run_id)
        .join(OrphanMember, OrphanMember.cluster_id == OrphanCluster.id)
        .join(KnowledgeEntry, KnowledgeEntry.id == OrphanMember.entry_id)
        .where((OrphanCluster.status == "open") | (OrphanCluster.promoted_run_id == run.id))
        .order_by(KnowledgeEntry.created_at)
        .options(defer(OrphanCluster.centroid), defer(KnowledgeEntry.embedding))
    ).all()
    grouped: dict[uuid.UUID, dict] = {}
    for cluster, entry, member_run in rows:
        g = grouped.setdefault(cluster.id, {"cluster": cluster, "entries": [], "new": 0})
        g["entries"].append(entry)
        g["new"] += member_run == run.id
    need_e, need_s = settings.cluster_min_entries, settings.cluster_min_sources
    views = []
    for g in grouped.values():
        cluster, members = g["cluster"], g["entries"]
        sources = {m.source_ref or f"entry:{m.id}" for m in members}
        views.append({
            "id": str(cluster.id), "label": cluster.label, "status": cluster.status, "sop": cluster.sop_file_path,
            "entries": len(members), "sources": len(sources), "min_entries": need_e, "min_sources": need_s,
            "progress": round(min(1.0, len(members) / need_e, len(sources) / need_s), 3),
            "new_this_run": g["new"], "tags": list(cluster.tags or [])[:8],
            "samples": [_excerpt(m.content, 120) for m in members[:3]],
        })
    views.sort(key=lambda v: (v["status"] != "promoted", -v["progress"], -v["entries"]))
    open_total = sum(1 for v in views if v["status"] == "open")
    return {"open_total": open_total, "shown": views[:MAX_CLUSTERS]}


def _cost(session: Session, run: SyncRun) -> dict:
    """Tokens and dollars per step/provider/model, from the LLM call log."""
    rows = session.execute(
        select(LlmCall.step, LlmCall.provider, LlmCall.model, func.count(), func.sum(LlmCall.input_tokens),
               func.sum(LlmCall.output_tokens), func.sum(LlmCall.cache_read_tokens + LlmCall.cache_write_tokens),
               func.sum(LlmCall.cost_usd))
        .where(LlmCall.run_id == run.id).group_by(LlmCall.step, LlmCall.provider, LlmCall.model)
        .order_by(LlmCall.step)
    ).all()
    lines = [{"step": s, "provider": p, "model": m, "calls": int(n), "input_tokens": int(i or 0),
              "output_tokens": int(o or 0), "cache_tokens": int(c or 0), "cost_usd": float(d or 0)}
             for s, p, m, n, i, o, c, d in rows]
    total = float(run.cost_usd or 0) or sum(line["cost_usd"] for line in lines)
    return {"total_usd": round(total, 6), "input_tokens": sum(x["input_tokens"] for x in lines),
            "output_tokens": sum(x["output_tokens"] for x in lines), "lines": lines, "usage": run.usage}


def paths_for(settings: Settings, run_id: str) -> tuple[Path, Path]:
    """Where a run's report files live: (json, html)."""
    base = settings.report_path / f"run-{run_id}"
    return base.with_suffix(".json"), base.with_suffix(".html")


def write(report: dict, json_path: Path, html_path: Path | None = None) -> None:
    """Write the JSON and (optionally) the HTML page."""
    from playbook_sync.report_html import render

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render(report), encoding="utf-8")


def write_quietly(session: Session, settings: Settings, repo: PlaybookRepo, run: SyncRun) -> tuple[Path, Path] | None:
    """Build and write a run's report into the reports directory; log, never raise, on failure."""
    try:
        with session.begin_nested():  # a failing query here must not abort the run's own transaction
            data = build(session, settings, repo, run)
        json_path, html_path = paths_for(settings, str(run.id))
        write(data, json_path, html_path)
        log.info("report written to %s", html_path, extra={"run_id": str(run.id)})
        return json_path, html_path
    except Exception as exc:
        log.warning("report for run %s not written: %s", run.id, exc, extra={"run_id": str(run.id)})
        return None


def load(settings: Settings, run_id: str) -> dict | None:
    """A stored report by run id or unique prefix (how dry runs are looked up later)."""
    matches = sorted(settings.report_path.glob(f"run-{run_id.strip().lower()}*.json"))
    if len(matches) != 1:
        return None
    return json.loads(matches[0].read_text(encoding="utf-8"))
