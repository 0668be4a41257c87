"""Grounding: what generation is allowed to draw on, found by hybrid search over our own knowledge.

`sources_for` is the one door: today it searches SOP sections and knowledge entries here
(full-text ranking fused with pgvector by reciprocal rank fusion, as retrieval.py does for
runs); the search module of issue 13 (sections, entries and execution reports) can replace
its body without changing its callers.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from playbook_sync.builder.models import Source
from playbook_sync.retrieval import RRF_K

POOL = 40
MAX_TEXT = 700  # characters of each source put in a prompt: enough to quote, short enough for many

_QUERY = "(SELECT string_agg(quote_literal(w), ' | ')::tsquery FROM unnest(tsvector_to_array(to_tsvector('english', :q))) w)"

_SECTIONS = f"""
WITH q AS (SELECT {_QUERY} AS q),
lexical AS (
    SELECT s.id, rank() OVER (ORDER BY ts_rank_cd(s.search, q.q) DESC, s.id) AS r
    FROM cp_sop_sections s, q WHERE q.q IS NOT NULL AND s.search @@ q.q
    ORDER BY ts_rank_cd(s.search, q.q) DESC, s.id LIMIT :pool),
nearest AS (
    SELECT s.id, rank() OVER (ORDER BY s.embedding <=> CAST(:v AS vector), s.id) AS r
    FROM cp_sop_sections s ORDER BY s.embedding <=> CAST(:v AS vector), s.id LIMIT :pool),
fused AS (
    SELECT coalesce(l.id, n.id) AS id, coalesce(1.0 / ({RRF_K} + l.r), 0) + coalesce(1.0 / ({RRF_K} + n.r), 0) AS score
    FROM lexical l FULL JOIN nearest n ON n.id = l.id)
SELECT s.id, s.file_path, s.heading, coalesce(s.body, ''), e.title, f.score
FROM fused f JOIN cp_sop_sections s ON s.id = f.id JOIN cp_sop_embeddings e ON e.id = s.sop_embedding_id
ORDER BY f.score DESC, s.file_path, s.position LIMIT :limit
"""

_ENTRIES = f"""
WITH q AS (SELECT {_QUERY} AS q),
lexical AS (
    SELECT e.id, rank() OVER (ORDER BY ts_rank_cd(to_tsvector('english', e.content), q.q) DESC, e.id) AS r
    FROM cp_knowledge_entries e, q WHERE q.q IS NOT NULL AND to_tsvector('english', e.content) @@ q.q
    ORDER BY r LIMIT :pool),
nearest AS (
    SELECT e.id, rank() OVER (ORDER BY e.embedding <=> CAST(:v AS vector), e.id) AS r
    FROM cp_knowledge_entries e WHERE e.embedding IS NOT NULL
    ORDER BY e.embedding <=> CAST(:v AS vector), e.id LIMIT :pool),
fused AS (
    SELECT coalesce(l.id, n.id) AS id, coalesce(1.0 / ({RRF_K} + l.r), 0) + coalesce(1.0 / ({RRF_K} + n.r), 0) AS score
    FROM lexical l FULL JOIN nearest n ON n.id = l.id)
SELECT e.id, e.category, e.transcript_type, e.content, f.score
FROM fused f JOIN cp_knowledge_entries e ON e.id = f.id
ORDER BY f.score DESC, e.id LIMIT :limit
"""


def _clip(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1].rsplit(" ", 1)[0] + "…"


def _section_text(body: str, title: str, heading: str) -> str:
    """A section's prose: without the title and heading it is stored with, headings and admonition fences."""
    lines = body.splitlines()
    lines = lines[1 + bool(heading):] if lines and lines[0] == title else lines
    return "\n".join(line for line in lines if not line.lstrip().startswith(("#", ":::", "---")))


def sources_for(session: Session, embedder, query: str, limit: int = 8) -> list[dict]:
    """Up to `limit` sources for `query`, best first, alternating SOP sections and knowledge entries.

    Each is a dict: type (sop_section | entry), id, title, text.
    """
    if not query.strip() or limit < 1:
        return []
    vector = "[" + ",".join(f"{x:.7g}" for x in embedder.embed([query])[0]) + "]"
    params = {"q": query, "v": vector, "pool": POOL, "limit": limit}
    sections = [Source(type="sop_section", id=str(sid), title=f"{title} — {heading}" if heading else title,
                       text=_clip(_section_text(body, title, heading))).model_dump()
                for sid, _path, heading, body, title, _score in session.execute(text(_SECTIONS), params)]
    entries = [Source(type="entry", id=str(eid), title=f"{category.replace('_', ' ')} from a {kind} call"
                      if kind != "report" else f"{category.replace('_', ' ')} from an execution report",
                      text=_clip(content)).model_dump()
               for eid, category, kind, content, _score in session.execute(text(_ENTRIES), params)]
    mixed: list[dict] = []
    for i in range(max(len(sections), len(entries))):
        mixed += [s[i] for s in (sections, entries) if i < len(s)]
    return mixed[:limit]


def index(session: Session, deps) -> None:
    """Make the knowledge searchable without waiting for a weekly run: SOP sections (changed ones
    re-embedded, as a run does) and every entry without a vector for the current embedder."""
    from types import SimpleNamespace

    from playbook_sync import pipeline
    from playbook_sync.models import KnowledgeEntry

    pipeline.sync_sops(session, deps, SimpleNamespace(base_sha=None))  # a stand-in for the run row it notes the head on
    pipeline.embed_entries(session, deps.embedder, list(session.scalars(select(KnowledgeEntry.id))))
