"""Context for prompts: a customer's recent execution reports and the most similar successful ones elsewhere.

What the old system built by hand (the last three reports of a customer pasted into a prompt),
now with filters, and with what worked for other accounts on a similar problem, as a compact
text block ("RECENT PLAYBOOK INSIGHTS …") and as JSON.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from playbook_sync.evidence import parse_outcomes
from playbook_sync.models_reports import PlaybookReport
from playbook_sync.providers.base import Embedder
from playbook_sync.reports import _as_lines, outcome_lines

MAX_ITEMS = 20


def _when():
    return func.coalesce(PlaybookReport.completed_at, PlaybookReport.report_generated_at, PlaybookReport.created_at)


def _view(r: PlaybookReport) -> dict:
    data = r.report_data or {}
    when = r.completed_at or r.report_generated_at or r.created_at
    return {"report_id": r.report_id, "customer_id": r.customer_id, "account_id": r.account_id,
            "account_name": r.account_name, "playbook_id": r.playbook_id, "playbook_name": r.playbook_name,
            "status": r.status, "date": when.date().isoformat() if when else None,
            "steps_completed": r.steps_completed, "total_steps": r.total_steps,
            "executive_summary": data.get("executive_summary"), "outcomes": outcome_lines(data),
            "evidence": [o.to_dict() for o in parse_outcomes(data)],  # metric, before, after, delta, unit, status
            "next_steps": _as_lines(data.get("next_steps"))}


def build(session: Session, embedder: Embedder, *, customer_id: str, query: str | None = None, account: str | None = None,
          playbook: str | None = None, status: str | None = "completed", recent: int = 3, similar: int = 3) -> dict:
    """{"customer_id", "recent": [...], "similar": [...], "text": "RECENT PLAYBOOK INSIGHTS …"}."""
    recent, similar = max(0, min(recent, MAX_ITEMS)), max(0, min(similar, MAX_ITEMS))
    mine = select(PlaybookReport).options(defer(PlaybookReport.embedding)).where(PlaybookReport.customer_id == customer_id)
    for column, value in ((PlaybookReport.account_id, account), (PlaybookReport.playbook_id, playbook),
                          (PlaybookReport.status, status)):
        if value is not None:
            mine = mine.where(column == value)
    own = list(session.scalars(mine.order_by(_when().desc(), PlaybookReport.report_id).limit(recent)))
    others = select(PlaybookReport).options(defer(PlaybookReport.embedding)).where(
        PlaybookReport.customer_id != customer_id, PlaybookReport.status == "completed",
        PlaybookReport.embedding_model == embedder.model)
    if playbook is not None:
        others = others.where(PlaybookReport.playbook_id == playbook)
    # Similar to the question asked, else to what this customer's recent reports say.
    probe = query.strip() if query and query.strip() else "\n".join(r.body or "" for r in own)
    alike = []
    if probe.strip() and similar:
        vector = embedder.embed([probe[:8000]])[0]
        alike = list(session.scalars(others.order_by(PlaybookReport.embedding.cosine_distance(vector)).limit(similar)))
    views, near = [_view(r) for r in own], [_view(r) for r in alike]
    return {"customer_id": customer_id, "query": query, "recent": views, "similar": near, "text": text_block(customer_id, views, near)}


def _line(v: dict) -> str:
    steps = f"; {v['steps_completed']}/{v['total_steps']} steps" if v["total_steps"] else ""
    head = f"- {v['playbook_name'] or v['playbook_id']} for {v['account_name'] or v['account_id']} ({v['status']} {v['date']}{steps})"
    parts = [head + (f": {v['executive_summary']}" if v["executive_summary"] else "")]
    if v["outcomes"]:
        parts.append("  Outcomes: " + "; ".join(v["outcomes"]))
    if v["next_steps"]:
        parts.append("  Next steps: " + "; ".join(v["next_steps"]))
    return "\n".join(parts)


def text_block(customer_id: str, recent: list[dict], similar: list[dict]) -> str:
    """The compact block a prompt can take as is."""
    lines = [f"RECENT PLAYBOOK INSIGHTS (customer {customer_id})"]
    lines += ["Recent executions:", *(map(_line, recent) if recent else ["- none"])]
    lines += ["What worked for other accounts:", *(map(_line, similar) if similar else ["- none"])]
    return "\n".join(lines)
