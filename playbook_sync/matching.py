"""Top-k SOP candidates for an entry via pgvector, and the similarity bands."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session, defer

from playbook_sync import db
from playbook_sync.config import Bands
from playbook_sync.models import SopEmbedding, SopSection
from playbook_sync.schemas import Candidate

# Sections per query: an SOP has ~5-15 sections, so this many nearest sections
# almost always covers k distinct SOPs; HNSW needs ef_search >= the limit.
SECTIONS_PER_SOP = 12
# HNSW candidate list per query (pgvector's hnsw.ef_search, never below the LIMIT). At 100k
# section vectors 40 found ~90% of the true top-3 SOPs of matched entries, 100 found ~99%,
# for ~1 ms more (bench/matching.py, BENCHMARKS.md).
EF_SEARCH = 100


def band(similarity: float, bands: Bands) -> str:
    """strong (>= strong), weak (>= weak) or none."""
    if similarity >= bands.strong:
        return "strong"
    if similarity >= bands.weak:
        return "weak"
    return "none"


def nearest_sops(session: Session, *, vector: Sequence[float] | ColumnElement, k: int) -> list[tuple[str, str, float]]:
    """(path, best section, similarity) of the k SOPs whose best section is nearest (vector: values or SQL)."""
    limit = min(max(k * SECTIONS_PER_SOP, 40), db.EF_SEARCH_MAX)  # a huge k: the rest are ranked exactly below
    # Ordered by the selected column: each distance is computed (and its vector detoasted) once, not twice.
    query = vector if isinstance(vector, ColumnElement) else list(vector)
    distance = SopSection.embedding.cosine_distance(query).label("distance")
    rows = db.on_hnsw_index(session, select(SopSection.file_path, SopSection.heading, distance).order_by(distance).limit(limit),
                            ef_search=max(limit, EF_SEARCH))
    best: dict[str, tuple[str, str, float]] = {}
    for path, heading, d in rows:
        if path not in best:
            best[path] = (path, heading, 1.0 - float(d))
            if len(best) == k:
                break
    if len(best) < k and len(rows) == limit:
        # A few SOPs with many similar sections filled the pool (one SOP of 20,000 sections took
        # all 40 rows): the rest are ranked exactly, best section per SOP. Every SOP outside the
        # pool is farther than all of it, so these come after the pool's SOPs, in order.
        best.update((p, (p, h, 1.0 - float(d))) for p, h, d in _best_per_sop(session, query, exclude=list(best), k=k - len(best)))
    return list(best.values())


def _best_per_sop(session: Session, query, *, exclude: list[str], k: int) -> list[tuple[str, str, float]]:
    """(path, heading, distance) of the k SOPs not in exclude whose best section is nearest (exact, per SOP)."""
    distance = SopSection.embedding.cosine_distance(query).label("distance")
    per_sop = (select(SopSection.file_path, SopSection.heading, distance).where(SopSection.file_path.not_in(exclude))
               .ext(distinct_on(SopSection.file_path)).order_by(SopSection.file_path, distance).subquery())
    return [tuple(r) for r in session.execute(select(per_sop).order_by(per_sop.c.distance).limit(k)).all()]


def candidates(session: Session, *, vector: Sequence[float] | ColumnElement, k: int, bands: Bands) -> tuple[float | None, list[Candidate]]:
    """The best similarity seen, and the strong/weak candidates with their SOP text."""
    nearest = nearest_sops(session, vector=vector, k=k)
    if not nearest:
        return None, []
    kept = [(p, h, s) for p, h, s in nearest if band(s, bands) != "none"]
    rows = {
        r.file_path: r
        # Not the whole-SOP vector: parsing 1,536 floats per candidate was a tenth of a worker's CPU.
        for r in session.scalars(select(SopEmbedding).options(defer(SopEmbedding.embedding))
                                 .where(SopEmbedding.file_path.in_([p for p, _, _ in kept])))
    }
    return nearest[0][2], [
        Candidate(sop_path=p, title=rows[p].title, section=h, similarity=s, band=band(s, bands), sop_text=rows[p].content)
        for p, h, s in kept
        if p in rows
    ]
