"""The run's commit message: a structured changelog with the run trailer."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from playbook_sync.schemas import CalloutKind

if TYPE_CHECKING:
    from playbook_sync.edits import Applied
    from playbook_sync.models import SyncRun

KIND_LABEL = {
    CalloutKind.field_tip: "field tip",
    CalloutKind.question: "common question",
    CalloutKind.info: "product intel",
    CalloutKind.results: "results from the field",
}


def trailer(run_id: uuid.UUID | str) -> str:
    """The git trailer that ties a commit to its run (and makes re-commits detectable)."""
    return f"Playbook-Sync-Run: {run_id}"


def commit_message(run: SyncRun, applied: Applied) -> str:
    """Subject, per-SOP changes, new SOPs, window, and the run trailer."""
    per_sop: dict[str, list] = defaultdict(list)
    for block in applied.blocks:
        per_sop[block.sop_path].append(block)
    parts = []
    if per_sop:
        parts.append(f"enrich {len(per_sop)} SOP{'s' if len(per_sop) != 1 else ''}")
    if applied.sops:
        parts.append(f"add {len(applied.sops)} new SOP{'s' if len(applied.sops) != 1 else ''}")
    lines = [f"playbook-sync: {', '.join(parts) or 'no changes'}", ""]
    if per_sop:
        lines.append("Enriched:")
        for path, blocks in sorted(per_sop.items()):
            kinds = Counter(KIND_LABEL[b.kind] for b in blocks)
            entries = sum(len(b.entry_ids) for b in blocks)
            detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            sections = ", ".join(sorted({b.hint or "(top)" for b in blocks}))
            source = f"{entries} entr{'ies' if entries != 1 else 'y'}" if entries else "execution reports"  # an aggregate
            lines.append(f"- {path}: {detail} from {source} (sections: {sections})")
            for b in blocks:  # which entries each block came from, so an editor can trace a tip back
                # An aggregate comes from execution reports, not entries; an update says it replaced ours.
                source = ", ".join(str(e) for e in b.entry_ids) or "execution reports"
                replaced = f" (replaces the earlier aggregate{'s' if len(b.replaces) > 1 else ''})" if b.replaces else ""
                lines.append(f"  - {b.hint or '(top)'}, {KIND_LABEL[b.kind]}: {source}{replaced}")
        lines.append("")
    if applied.sops:
        lines.append("Created:")
        for sop in applied.sops:
            lines.append(f"- {sop.path}: {sop.label!r} from {len(sop.entry_ids)} entries")
        lines.append("")
    start = f"{run.window_start:%Y-%m-%d %H:%M}" if run.window_start else "the beginning"
    lines.append(f"Window: {start} .. {run.window_end:%Y-%m-%d %H:%M} UTC")
    lines += ["", trailer(run.id)]
    return "\n".join(lines) + "\n"
