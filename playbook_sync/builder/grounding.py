"""Grounding: what generation is allowed to draw on, found by hybrid search over our own knowledge.

`sources_for` is the one door: the hybrid search of search.py (full-text ranking fused with
pgvector by reciprocal rank fusion) over SOP sections, knowledge entries and completed
execution reports.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from playbook_sync import search
from playbook_sync.builder.models import Source
from playbook_sync.models import KnowledgeEntry, SopEmbedding, SopSection
from playbook_sync.models_reports import PlaybookReport

MAX_TEXT = 700  # characters of each source put in a prompt: enough to quote, short enough for many


def _clip(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1].rsplit(" ", 1)[0] + "…"


def _section_text(body: str, title: str, heading: str) -> str:
    """A section's prose: without the title and heading it is stored with, headings and admonition fences."""
    lines = body.splitlines()
    lines = lines[1 + bool(heading):] if lines and lines[0] == title else lines
    return "\n".join(line for line in lines if not line.lstrip().startswith(("#", ":::", "---")))


def _source(session: Session, hit: search.Result) -> Source | None:
    """The prompt's view of a search hit: its whole (clipped) text and a title that says what it is."""
    if hit.type == "sop":
        row = session.execute(select(SopSection.heading, SopSection.body, SopEmbedding.title)
                              .join(SopEmbedding, SopEmbedding.id == SopSection.sop_embedding_id)
                              .where(SopSection.id == uuid.UUID(hit.id))).first()
        if row is None:
            return None
        heading, body, title = row
        return Source(type="sop_section", id=hit.id, title=f"{title} — {heading}" if heading else title,
                      text=_clip(_section_text(body or "", title, heading)))
    if hit.type == "entry":
        entry = session.get(KnowledgeEntry, uuid.UUID(hit.id))
        if entry is None:
            return None
        kind = entry.transcript_type
        title = (f"{entry.category.replace('_', ' ')} from an execution report" if kind == "report"
                 else f"{entry.category.replace('_', ' ')} from a {kind} call")
        return Source(type="entry", id=hit.id, title=title, text=_clip(entry.content))
    report = session.get(PlaybookReport, hit.id)
    summary = (report.report_data or {}).get("executive_summary") if report else None
    return Source(type="report", id=hit.id, title=hit.title, text=_clip(str(summary or hit.snippet)))


def sources_for(session: Session, embedder, query: str, limit: int = 8) -> list[dict]:
    """Up to `limit` sources for `query`, best first: SOP sections and knowledge entries from the
    hybrid search (search.py), with the most similar completed execution reports after them.

    Each is a dict: type (sop_section | entry | report), id, title, text.
    """
    if not query.strip() or limit < 1:
        return []
    try:
        hits = search.search(session, embedder, query, search.Filters(types=("sop", "entry"), limit=limit))
        hits += search.search(session, embedder, query, search.Filters(types=("report",), status="completed",
                                                                     limit=max(1, limit // 4)))
    except search.SearchError:  # a query without a searchable word grounds in nothing, it is not an error
        return []
    sources = [s.model_dump() for s in (_source(session, h) for h in hits) if s is not None]
    return sources[:limit]


def index(session: Session, deps) -> None:
    """Make the knowledge searchable without waiting for a weekly run: SOP sections (changed ones
    re-embedded, as a run does) and every entry without a vector for the current embedder."""
    from types import SimpleNamespace

    from playbook_sync import pipeline
    from playbook_sync.models import KnowledgeEntry

    pipeline.sync_sops(session, deps, SimpleNamespace(base_sha=None))  # a stand-in for the run row it notes the head on
    pipeline.embed_entries(session, deps.embedder, list(session.scalars(select(KnowledgeEntry.id))))
