"""Hybrid search across everything we hold: SOP sections, knowledge entries and execution reports.

Lexical (PostgreSQL full text: the generated `search` tsvectors of sections (0004), entries and
reports (0005), ranked by ts_rank) and vector (pgvector, the same embedder as everything else)
rankings are fused by reciprocal rank fusion, as retrieval.py does for entries against SOPs,
in one SQL statement, with the filters in SQL. The query's lexemes are OR-ed: a query phrased
differently from the text still ranks by the words it shares, and the vector side by meaning.
The vector side keeps only rows with some similarity (cosine distance < 1): a query of stop words
is orthogonal to every row, and ranking ties at distance 1 would return arbitrary rows as hits.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from playbook_sync.ingest import clean
from playbook_sync.providers.base import Embedder
from playbook_sync.retrieval import RRF_K

Kind = Literal["sop", "entry", "report"]
KINDS: tuple[str, ...] = ("sop", "entry", "report")
STATUSES = ("completed", "failed", "in-progress")
POOL = 100  # candidates per source and ranking before fusing
MAX_LIMIT = 100


class SearchError(ValueError):
    """A search request that cannot be answered (empty query, unknown type or status): one sentence."""


@dataclass(frozen=True)
class Filters:
    """What a search may return; customer, account, playbook and status only ever match reports."""

    types: tuple[str, ...] = KINDS
    customer: str | None = None
    account: str | None = None
    playbook: str | None = None
    status: str | None = None
    since: datetime | None = None
    limit: int = 10

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in KINDS]
        if unknown or not self.types:
            raise SearchError(f"unknown type {', '.join(unknown) or '(none)'}; use sop, entry or report")
        if self.status is not None and self.status not in STATUSES:
            raise SearchError(f"unknown status {self.status!r}; use completed, failed or in-progress")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise SearchError(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")

    @property
    def reports_only(self) -> bool:
        """SOP sections and entries belong to no customer, account, playbook or status."""
        return any(v is not None for v in (self.customer, self.account, self.playbook, self.status))


@dataclass(frozen=True)
class Result:
    type: str
    score: float
    title: str
    snippet: str
    link: str  # SOP path#section-anchor, entry:<id>, report:<id>
    id: str
    lexical_rank: int | None = None
    vector_rank: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def anchor(heading: str) -> str:
    """The anchor Docusaurus gives a heading: lowercase, punctuation dropped, spaces as hyphens."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading.strip().lower()))


_HEADLINE = "'MaxFragments=1, MaxWords=28, MinWords=12, StartSel=\"\", StopSel=\"\", FragmentDelimiter=\" … \"'"

# A section's body starts with the SOP title and its heading (sops.section_embedding_text) before
# the section's own "## heading" line; the result's title shows both, so the snippet skips them
# (it read "SOP 2.3: … Why This Matters Why This Matters Teams that stop…").
_SOP_TEXT = r"regexp_replace(s.body, CASE WHEN s.heading <> '' THEN '^[^\n]*\n[^\n]*\n' ELSE '^[^\n]*\n' END, '')"

# ts_headline drops whatever its parser reads as an HTML tag, so a snippet lost "<Too expensive>" and
# "<Retainer/>". It reads `&lt;` as an entity and keeps it: the text goes in with `&` and `<` encoded,
# and _snippet decodes the headline back to the text as written.
_DOC = f"coalesce({_SOP_TEXT}, k.content || coalesce(E'\\n' || k.context, ''), r.body, '')"
_ENCODED_DOC = f"replace(replace({_DOC}, '&', '&amp;'), '<', '&lt;')"

_SQL = f"""
WITH q AS (
    SELECT CAST(:vec AS vector) AS v,
           (SELECT string_agg(quote_literal(w), ' | ')::tsquery
            FROM unnest(tsvector_to_array(to_tsvector('english', :q))) AS w) AS tq),
sop_lex AS (
    SELECT 'sop'::text AS type, s.id::text AS key, ts_rank(s.search, q.tq, 1) AS score
    FROM cp_sop_sections s CROSS JOIN q JOIN cp_sop_embeddings e ON e.id = s.sop_embedding_id
    WHERE :want_sop AND s.search @@ q.tq AND (CAST(:since AS timestamptz) IS NULL OR e.updated_at >= :since)
    ORDER BY score DESC LIMIT :pool),
sop_vec AS (
    SELECT 'sop'::text AS type, s.id::text AS key, s.embedding <=> q.v AS distance
    FROM cp_sop_sections s CROSS JOIN q JOIN cp_sop_embeddings e ON e.id = s.sop_embedding_id
    WHERE :want_sop AND :use_vec AND (s.embedding <=> q.v) < 1
      AND (CAST(:since AS timestamptz) IS NULL OR e.updated_at >= :since)
    ORDER BY distance LIMIT :pool),
entry_lex AS (
    SELECT 'entry'::text, k.id::text, ts_rank(k.search, q.tq, 1)
    FROM cp_knowledge_entries k CROSS JOIN q
    WHERE :want_entry AND k.search @@ q.tq AND (CAST(:since AS timestamptz) IS NULL OR k.created_at >= :since)
    ORDER BY 3 DESC LIMIT :pool),
entry_vec AS (
    SELECT 'entry'::text, k.id::text, k.embedding <=> q.v
    FROM cp_knowledge_entries k CROSS JOIN q
    WHERE :want_entry AND :use_vec AND k.embedding IS NOT NULL AND k.embedding_model = :model AND (k.embedding <=> q.v) < 1
      AND (CAST(:since AS timestamptz) IS NULL OR k.created_at >= :since)
    ORDER BY 3 LIMIT :pool),
report_rows AS (
    SELECT r.* FROM playbook_reports r
    WHERE :want_report
      AND (CAST(:customer AS text) IS NULL OR r.customer_id = :customer)
      AND (CAST(:account AS text) IS NULL OR r.account_id = :account)
      AND (CAST(:playbook AS text) IS NULL OR r.playbook_id = :playbook)
      AND (CAST(:status AS text) IS NULL OR r.status = :status)
      AND (CAST(:since AS timestamptz) IS NULL OR coalesce(r.completed_at, r.report_generated_at, r.created_at) >= :since)),
report_lex AS (
    SELECT 'report'::text, r.report_id, ts_rank(r.search, q.tq, 1)
    FROM report_rows r CROSS JOIN q WHERE r.search @@ q.tq ORDER BY 3 DESC LIMIT :pool),
report_vec AS (
    SELECT 'report'::text, r.report_id, r.embedding <=> q.v
    FROM report_rows r CROSS JOIN q
    WHERE :use_vec AND r.embedding IS NOT NULL AND r.embedding_model = :model AND (r.embedding <=> q.v) < 1
    ORDER BY 3 LIMIT :pool),
lex AS (
    SELECT type, key, rank() OVER (ORDER BY score DESC) AS r
    FROM (SELECT * FROM sop_lex UNION ALL SELECT * FROM entry_lex UNION ALL SELECT * FROM report_lex) x),
vec AS (
    SELECT type, key, rank() OVER (ORDER BY distance) AS r
    FROM (SELECT * FROM sop_vec UNION ALL SELECT * FROM entry_vec UNION ALL SELECT * FROM report_vec) x),
fused AS (
    SELECT coalesce(l.type, v.type) AS type, coalesce(l.key, v.key) AS key, l.r AS lexical_rank, v.r AS vector_rank,
           coalesce(1.0 / ({RRF_K} + l.r), 0) + coalesce(1.0 / ({RRF_K} + v.r), 0) AS score
    FROM lex l FULL JOIN vec v ON v.type = l.type AND v.key = l.key
    ORDER BY score DESC, type, key LIMIT :limit)
SELECT f.type, f.key, f.score, f.lexical_rank, f.vector_rank,
       CASE f.type WHEN 'sop' THEN se.title || CASE WHEN s.heading <> '' THEN ' › ' || s.heading ELSE '' END
                   WHEN 'entry' THEN initcap(replace(k.category, '_', ' ')) || coalesce(' — ' || k.speaker, '')
                   ELSE coalesce(r.playbook_name, r.playbook_id) || ' — ' || coalesce(r.account_name, r.account_id)
                        || ' (' || r.status || ')' END AS title,
       coalesce({_SOP_TEXT}, k.content || coalesce(E'\\n' || k.context, ''), r.body) AS body,
       s.file_path, s.heading,
       ts_headline('english', {_ENCODED_DOC}, q.tq, {_HEADLINE})
           AS headline
FROM fused f CROSS JOIN q
LEFT JOIN cp_sop_sections s ON f.type = 'sop' AND s.id::text = f.key
LEFT JOIN cp_sop_embeddings se ON se.id = s.sop_embedding_id
LEFT JOIN cp_knowledge_entries k ON f.type = 'entry' AND k.id::text = f.key
LEFT JOIN playbook_reports r ON f.type = 'report' AND r.report_id = f.key
ORDER BY f.score DESC, f.type, f.key
"""


def _snippet(headline: str | None, body: str | None, *, mdx: bool = False, limit: int = 240) -> str:
    """The headline (decoded: it was made from the encoded text, see _ENCODED_DOC), else the body's start.

    mdx: the text is an SOP section's MDX, whose character references (mdx_safe writes `<` as `&lt;`)
    the page shows decoded, so the snippet does too."""
    shown = html.unescape(headline) if headline and headline.strip() else body or ""
    shown = html.unescape(shown) if mdx else shown
    text = " ".join(re.sub(r"(?m)^#{1,6}\s+", "", shown).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def search(session: Session, embedder: Embedder, query: str, filters: Filters | None = None) -> list[Result]:
    """The best `filters.limit` results for the query, fused from both rankings over every allowed source."""
    filters = filters or Filters()
    query = " ".join(clean(query).split())  # invisible and control characters are not a query
    if not query:
        raise SearchError("the search query is empty")
    vector = embedder.embed([query[:8000]])[0]
    types = set(filters.types) - ({"sop", "entry"} if filters.reports_only else set())
    params = {
        "vec": "[" + ",".join(repr(float(x)) for x in vector) + "]", "q": query, "model": embedder.model,
        "want_sop": "sop" in types, "want_entry": "entry" in types, "want_report": "report" in types,
        "customer": filters.customer, "account": filters.account, "playbook": filters.playbook,
        # A query without a content word embeds to zeros, whose cosine distance is undefined: lexical side only.
        "use_vec": any(x != 0 for x in vector), "status": filters.status, "since": filters.since, "pool": max(POOL, filters.limit * 5), "limit": filters.limit,
    }
    out = []
    for row in session.execute(text(_SQL), params):
        kind, key = row.type, row.key
        link = f"{kind}:{key}"
        if kind == "sop":
            link = f"{row.file_path}#{anchor(row.heading)}" if row.heading else row.file_path
        out.append(Result(type=kind, score=round(float(row.score), 6), title=row.title or key,
                          snippet=_snippet(row.headline, row.body, mdx=kind == "sop"), link=link, id=key,
                          lexical_rank=row.lexical_rank, vector_rank=row.vector_rank))
    return out
