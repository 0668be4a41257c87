"""Quality measures of a benchmark run, read from the database and the committed repository."""

from __future__ import annotations

import subprocess
import uuid
from collections import defaultdict
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.quality.entries import Label
from playbook_sync.models import InsertedCallout, KnowledgeSopMatch, OrphanCluster, OrphanMember, RunItem, SyncRun

FINAL = ("enriched", "redundant", "orphaned")


def _ratio(num: int, den: int) -> dict:
    return {"value": round(num / den, 3) if den else None, "num": num, "den": den}


def _norm(heading: str | None) -> str:
    return " ".join((heading or "").split()).casefold()


def _runs(session: Session, run_ids: list[uuid.UUID]) -> list[SyncRun]:
    runs = session.scalars(select(SyncRun).where(SyncRun.id.in_(run_ids))).all()
    return sorted(runs, key=lambda r: r.run_at)


def retrieval(session: Session, labels: dict[str, Label], run_ids: list[uuid.UUID]) -> dict:
    """recall@1 / @3 of the home SOP among the candidates of the run that first processed each entry."""
    order = {r.id: k for k, r in enumerate(_runs(session, run_ids))}
    first: dict[str, RunItem] = {}
    for item in session.scalars(select(RunItem).where(RunItem.run_id.in_(run_ids))):
        key = str(item.entry_id)
        if key not in first or order[item.run_id] < order[first[key].run_id]:
            first[key] = item
    candidates: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for m in session.scalars(select(KnowledgeSopMatch).where(KnowledgeSopMatch.sync_run_id.in_(run_ids),
                                                             KnowledgeSopMatch.sop_file_path.is_not(None))):
        item = first.get(str(m.knowledge_entry_id))
        if item is not None and item.run_id == m.sync_run_id:
            candidates[str(m.knowledge_entry_id)].append((m.similarity_score or 0.0, m.sop_file_path))
    homed = [k for k, lab in labels.items() if lab.home_sop and k in first]
    none = sum(1 for k in homed if not candidates[k])
    found1 = {k for k in homed if first[k].best_sop == labels[k].home_sop}
    found3 = {k for k in homed if labels[k].home_sop in [p for _, p in sorted(candidates[k], reverse=True)[:3]]}
    by_wording = {w: {"recall_at_1": _ratio(len(found1 & group), len(group)), "recall_at_3": _ratio(len(found3 & group), len(group))}
                  for w in ("playbook", "field, shared word", "field, no shared word")
                  if (group := {k for k in homed if labels[k].wording == w})}
    return {"recall_at_1": _ratio(len(found1), len(homed)), "recall_at_3": _ratio(len(found3), len(homed)),
            "no_candidate": _ratio(none, len(homed)), "by_wording": by_wording,
            "not_processed": sum(1 for k, lab in labels.items() if k not in first)}


def embedder_alone(embedder, files: dict[str, bytes], entries: list, labels: dict[str, Label]) -> dict:
    """Rank of the home SOP by the embedder alone on the original playbook (best section per SOP, exact, no
    bands): a diagnostic independent of the matcher, telling retrieval losses from the embedder's own limits."""
    import numpy as np

    from playbook_sync.sops import parse_sop, section_embedding_text

    docs = [parse_sop(p, c) for p, c in files.items() if p.startswith("docs/sops/") and p.endswith(".md")]
    owners = np.array([d.path for d in docs for _ in d.sections])
    sections = np.array(embedder.embed([section_embedding_text(d, s) for d in docs for s in d.sections]))
    homed = [e for e in entries if labels[str(e.id)].home_sop]
    vectors = np.array(embedder.embed([f"{e.content}\n{e.context}" if e.context else e.content for e in homed]))
    sims = vectors @ sections.T
    paths = sorted(set(owners))
    best = np.stack([sims[:, owners == p].max(axis=1) for p in paths], axis=1)  # entries x SOPs
    ranks, home_scores, other_scores = [], [], []
    for row, entry in zip(best, homed, strict=True):
        home = paths.index(labels[str(entry.id)].home_sop)
        ranks.append(1 + int((row > row[home]).sum()))
        home_scores.append(float(row[home]))
        other_scores.extend(float(v) for k, v in enumerate(row) if k != home)
    return {"at_1": _ratio(sum(r == 1 for r in ranks), len(ranks)), "at_3": _ratio(sum(r <= 3 for r in ranks), len(ranks)),
            "home_median": round(float(np.median(home_scores)), 3), "other_median": round(float(np.median(other_scores)), 3),
            "other_p95": round(float(np.percentile(other_scores, 95)), 3)}


def _statuses(session: Session, run_ids: list[uuid.UUID]) -> dict[str, str]:
    """Each entry's first final status over the runs (orphaned, enriched, redundant), else its last status."""
    out: dict[str, str] = {}
    for run in _runs(session, run_ids):
        for item in session.scalars(select(RunItem).where(RunItem.run_id == run.id)):
            key = str(item.entry_id)
            if out.get(key) not in FINAL:
                out[key] = item.status
    return out


def _promoted(session: Session) -> dict[str, dict]:
    """Promoted clusters: sop path → member entry ids and the run."""
    out = {}
    for cluster in session.scalars(select(OrphanCluster).where(OrphanCluster.status == "promoted")):
        members = [str(e) for e in session.scalars(select(OrphanMember.entry_id).where(OrphanMember.cluster_id == cluster.id))]
        out[cluster.sop_file_path] = {"members": members, "label": cluster.label}
    return out


def _open_clusters(session: Session) -> list[list[str]]:
    out = []
    for cluster in session.scalars(select(OrphanCluster).where(OrphanCluster.status == "open")):
        out.append([str(e) for e in session.scalars(select(OrphanMember.entry_id).where(OrphanMember.cluster_id == cluster.id))])
    return out


def added_files(repo: Path, base: str) -> list[str]:
    """Files the runs added to the playbook repository (committed), from git."""
    out = subprocess.run(["git", "-C", str(repo), "diff", "--name-only", "--diff-filter=A", base, "HEAD"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.endswith((".md", ".mdx"))]


def placement(session: Session, labels: dict[str, Label], run_ids: list[uuid.UUID], repo: Path, base: str) -> dict:
    """Where callouts went, what became of orphans and planted topics, restatements, back-dated entries."""
    promoted = _promoted(session)
    committed_new = added_files(repo, base)
    topic_sops: dict[str, list[str]] = defaultdict(list)  # topic → new SOPs built mostly from its entries
    for path, info in promoted.items():
        topics = [labels[m].topic for m in info["members"] if m in labels]
        majority = max(set(topics), key=topics.count) if topics else None
        if majority and topics.count(majority) * 2 > len(topics):
            topic_sops[majority].append(path)
    callouts = session.scalars(select(InsertedCallout).where(InsertedCallout.run_id.in_(run_ids))).all()
    pairs = [(str(e), c.sop_file_path, c.section) for c in callouts for e in c.entry_ids]
    sops_of: dict[str, set[str]] = defaultdict(set)
    for entry, path, _ in pairs:
        sops_of[entry].add(path)

    def right_sop(entry: str, path: str) -> bool:
        lab = labels.get(entry)
        if lab is None:
            return False
        if lab.home_sop:
            return path == lab.home_sop
        return bool(lab.topic) and path in topic_sops.get(lab.topic, [])

    in_home = [(e, p, s) for e, p, s in pairs if right_sop(e, p)]
    labelled_home = [(e, s) for e, p, s in in_home if labels[e].home_sop]
    right_section = sum(1 for e, s in labelled_home if _norm(s) in {_norm(h) for h in labels[e].home_sections})
    status = _statuses(session, run_ids)
    expected_orphans = {k for k, lab in labels.items() if lab.kind in ("planted", "noise")}
    judged = {k for k, lab in labels.items() if lab.kind in ("planted", "noise", "labelled", "restatement")}
    orphaned = {k for k in judged if status.get(k) == "orphaned"}
    topics = {}
    for key in sorted({lab.topic for lab in labels.values() if lab.topic}):
        members = {k for k, lab in labels.items() if lab.topic == key}
        folder = next(lab.topic_folder for lab in labels.values() if lab.topic == key)
        sops = topic_sops.get(key, [])
        topics[key] = {
            "entries": len(members), "new_sops": sops, "expected_folder": f"docs/sops/{folder}",
            "in_right_folder": sum(1 for p in sops if str(PurePosixPath(p).parent) == f"docs/sops/{folder}"),
            "committed": sum(1 for p in sops if p in committed_new),
            "open_clusters_holding_it": sum(1 for c in _open_clusters(session) if members & set(c)),
            "written_into_existing_sops": sum(1 for e, p, _ in pairs if e in members and p not in sops),
        }
    noise_promoted = sum(1 for info in promoted.values() for m in info["members"] if labels.get(m) and labels[m].kind == "noise")
    homed_promoted = sum(1 for info in promoted.values() for m in info["members"] if labels.get(m) and labels[m].home_sop)
    restated = {k: lab for k, lab in labels.items() if lab.kind == "restatement"}
    again = sum(1 for k, lab in restated.items() if sops_of.get(k, set()) & sops_of.get(lab.restates, set()))
    backdated = [k for k, lab in labels.items() if lab.backdated]
    return {
        "callouts": len(callouts), "entry_placements": len(pairs),
        "sop_precision": _ratio(len(in_home), len(pairs)),
        "section_precision": _ratio(right_section, len(labelled_home)),
        "orphan_precision": _ratio(len(orphaned & expected_orphans), len(orphaned)),
        "orphan_recall": _ratio(len(orphaned & expected_orphans), len(expected_orphans)),
        "homed_entries_orphaned": _ratio(sum(1 for k in orphaned if labels[k].home_sop),
                                         sum(1 for k in judged if labels[k].home_sop)),
        "topics": topics, "new_sops_committed": committed_new,
        "noise_promoted": noise_promoted, "homed_entries_in_new_sops": homed_promoted,
        "entries_in_more_than_one_sop": sum(1 for s in sops_of.values() if len(s) > 1),
        "entries_in_more_than_two_sops": sum(1 for s in sops_of.values() if len(s) > 2),
        "restatements": len(restated),
        "restatements_written_again": again,
        "restatements_written_anywhere": sum(1 for k in restated if k in sops_of),
        "backdated": len(backdated),
        "backdated_settled": sum(1 for k in backdated if status.get(k) in FINAL),
        "generic_section_placements": sum(1 for _, _, s in pairs if _generic(s)),
        "generic_sections_written": sorted({s for _, _, s in pairs if _generic(s)}),
        # Orphans the classifier was asked about (they had candidates) against those the gate gave none, by kind.
        "orphans_asked": _orphans_asked(session, labels, run_ids, orphaned),
        # For reading what went wrong: each placement outside the entry's home, with its label.
        "wrong_placements": [{"entry": e, "kind": labels[e].kind if e in labels else None, "week": labels[e].week if e in labels else None,
                              "home": labels[e].home_sop if e in labels else None, "placed": p, "section": s}
                             for e, p, s in pairs if not right_sop(e, p)],
        "statuses": {s: sum(1 for v in status.values() if v == s) for s in sorted(set(status.values()))},
    }


def _orphans_asked(session: Session, labels: dict[str, Label], run_ids: list[uuid.UUID], orphaned: set[str]) -> dict:
    asked = {str(e) for e in session.scalars(select(KnowledgeSopMatch.knowledge_entry_id).where(
        KnowledgeSopMatch.sync_run_id.in_(run_ids), KnowledgeSopMatch.sop_file_path.is_not(None)))}
    out: dict[str, list[int]] = {}
    for k in orphaned:
        kind = "homed" if labels[k].home_sop else labels[k].kind
        out.setdefault(kind, [0, 0])[0 if k in asked else 1] += 1
    return {kind: {"asked": a, "no_candidate": n} for kind, (a, n) in sorted(out.items())}


# The corpus's generic sections, by the headings bench/quality/playbook.py gives them: not a pattern, which
# also caught steps such as "1b. Funnel Conversion Metrics".
_GENERIC = frozenset({"metrics & kpis", "templates", "4a. maintenance schedule", "glossary", "references",
                      "appendix a: field definitions", "revision history"})


def _generic(section: str | None) -> bool:
    return _norm(section) in _GENERIC
