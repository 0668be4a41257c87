"""One home per entry (issue 11 #4): an entry enriches one SOP, or two when the classifier says so."""

from __future__ import annotations

from collections.abc import Sequence

from playbook_sync.schemas import Action, Candidate, Decision

MAX_HOMES = 2


def limit_homes(candidates: Sequence[Candidate], decisions: Sequence[Decision]) -> list[Decision]:
    """Any `enrich` beyond the first MAX_HOMES (in candidate order: best fused first) becomes
    `tangential`, with the reason in its rationale (the match log keeps it)."""
    order = {c.sop_path: i for i, c in enumerate(candidates)}
    enriched = sorted((d for d in decisions if d.action == Action.enrich), key=lambda d: order.get(d.sop_path, len(order)))
    kept = {d.sop_path for d in enriched[:MAX_HOMES]}
    note = f"Not written here: an entry enriches at most {MAX_HOMES} SOPs ({', '.join(sorted(kept))})."
    return [d.model_copy(update={"action": Action.tangential, "rationale": f"{note} {d.rationale}".strip()})
            if d.action == Action.enrich and d.sop_path not in kept else d for d in decisions]
