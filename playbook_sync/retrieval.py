"""Hybrid retrieval in PostgreSQL: BM25 over SOP sections fused with the pgvector ranking.

Why both: on long real SOPs the embedder's similarity of the right SOP sits barely above
that of unrelated ones (the offline embedder scored a median 0.19 against 0.11 on a real
playbook), while the rare words an entry shares with its home section (a product term, a
process name) are exactly what a bag-of-words ranking with inverse document frequency
rewards. The two are fused by standing: each ranker's score of an SOP (its best section) is
put on the entry's own scale, (score - median) / standard deviation of the SOPs after that
ranker's top k, and the two standings are summed. Like reciprocal rank fusion it needs no
common scale between the rankers, so the embedder stays swappable (offline or OpenAI)
without re-weighting anything; unlike it, it keeps how far ahead of the rest an SOP is,
which rank alone throws away (a clear lexical winner and a near tie count alike in RRF).
Within an SOP, sections are still ordered by RRF at section level (the placement hint).

Everything runs in one SQL statement per entry: the entry's lexemes (English stemming, as
the sections' generated `search` tsvector) and word pairs (lexicon.py), their IDF from the playbook's own sections
(cp_sop_lexicon, refreshed when SOPs change) times their IDF over the knowledge entries
(cp_entry_lexicon, refreshed by each run), BM25 per section over their postings, the
nearest sections by HNSW, RRF at section level, then the best section per SOP, its standing
for each ranker and the top-k SOPs by their sum — so one SOP with many similar sections cannot crowd the others out of the list.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from playbook_sync import background, calibration, db, prepared
from playbook_sync.calibration import MIN_NULL, NO_SPREAD, Gate, lexical_excess
from playbook_sync.config import Settings
from playbook_sync.headings import is_generic
from playbook_sync.lexicon import ENTRY_TEXT, pairs
from playbook_sync.models import SopEmbedding
from playbook_sync.schemas import Candidate

log = logging.getLogger(__name__)

# The constant of reciprocal rank fusion (Cormack et al., 2009): 60 damps the head of each
# list so neither ranking alone decides; it is the published default, not fitted here.
RRF_K = 60
# BM25's usual constants (Robertson & Zaragoza): term-frequency saturation and length normalisation.
BM25_K1, BM25_B = 1.2, 0.75
# Sections taken from each ranking before fusing; the vector side reads them off the HNSW index.
POOL = 200
# The entry's most informative words, and as many word pairs (by IDF), that query the postings; a long entry would
# otherwise match nearly every section through its common words.
MAX_TERMS = 32
TOP_SECTIONS = 3  # sections per SOP kept for the classifier's excerpt
# Entries whose hybrid rankings form the lexical and standing nulls (chance_nulls): twice the fewest that calibrate.
# Their medians are all the gate reads, and each entry costs one hybrid statement (a full BM25 over the postings).
CHANCE_SAMPLE = 2 * MIN_NULL
# The hybrid statement's planner settings, sent with it (hybrid_sops): keep the planner on the HNSW index (a high
# ef_search makes it cost an exact scan as cheaper), for this statement only. A prepared statement's generic plan
# is made under the settings of its first execution, so every execution passes the same ones.
PLANNER_SETTINGS = "SET LOCAL hnsw.ef_search = {pool}; SET LOCAL enable_seqscan = off; "


@dataclass(frozen=True)
class Hit:
    """One SOP in the fused ranking (by standing), with the section that placed it there."""

    sop_path: str
    section: str  # best fused section that is not a generic one (else the best one)
    similarity: float  # embedder similarity of the SOP's best section (what bands are calibrated on)
    rrf: float  # RRF score of the SOP's best section (the new-SOP module vote weighs by it)
    rank: int  # 1-based position in the fused ranking (by standing)
    standing: float | None = None  # fused standing: both rankers' (score - null median) / null sd, summed
    agreed: bool = False  # it holds the best section of both rankings: lexical and vector agree
    sections: tuple[str, ...] = ()  # its best fused sections, best first (what the classifier is shown: excerpts.py)


# A lexeme's weight is its IDF over the playbook's sections (BM25) times its IDF over the knowledge
# entries: words most calls use ("reps", "deal", "dashboard", "after signature") are how calls are
# told, not what one is about, and let boilerplate in an SOP outrank the step an entry names. Both
# are the same formula on two collections; with no entry statistics every word weighs alike.
_IDF = ("ln(1 + (st.sections - l.ndoc + 0.5) / (l.ndoc + 0.5))"
        " * ln(1 + greatest(st.entries, 1)::float / greatest(coalesce(el.ndoc, 0), 1))")
# float8 constants: a bare decimal literal is numeric in PostgreSQL, and numeric arithmetic over every posting of the
# query words cost more than the rest of the sum.
_BM25 = (f"t.idf * (p.tf * {BM25_K1 + 1}::float8) / "
         f"(p.tf + {BM25_K1}::float8 * ({1 - BM25_B}::float8 + {BM25_B}::float8 * p.length / st.avg_length))")


HYBRID_SQL = f"""
WITH words AS MATERIALIZED (  -- the entry's lexemes and word pairs
        SELECT w.word FROM cp_knowledge_entries e
        CROSS JOIN LATERAL (SELECT unnest(tsvector_to_array(e.search)) UNION {pairs(ENTRY_TEXT)}) AS w(word)
        WHERE e.id = :entry_id),
    -- The most informative of them that the playbook has, and their weights: up to :max_terms words and as many
    -- pairs. A pair is rarer than its words, so one list would fill with a long entry's pairs and drop its words.
    terms AS MATERIALIZED (
        SELECT word, idf FROM (
            SELECT l.word, {_IDF} AS idf,
                   row_number() OVER (PARTITION BY strpos(l.word, ' ') > 0 ORDER BY {_IDF} DESC, l.word) AS n
            FROM words w
            CROSS JOIN cp_sop_search_stats st
            -- one index lookup per word (OFFSET 0): unable to guess how many words an entry has, the planner
            -- hashed both whole lexicons instead, which doubled the statement's time
            CROSS JOIN LATERAL (SELECT * FROM cp_sop_lexicon l WHERE l.word = w.word OFFSET 0) l
            LEFT JOIN LATERAL (SELECT el.ndoc FROM cp_entry_lexicon el WHERE el.word = w.word OFFSET 0) el ON true) t
        WHERE n <= :max_terms),
    lexical AS (
        SELECT s.id, s.file_path, s.heading, best.score
        FROM (SELECT p.section_id,
                     sum({_BM25}) AS score
              -- Only the query terms' rows (models.SopPosting), by one index lookup per term: OFFSET 0 keeps the
              -- planner from joining them to every posting, which is what its generic plan did once the lexicon was
              -- analyzed and the one-row stats table was not (its 1,700-row guess times 1,700 terms): 5x the CPU
              -- at 1,000 SOPs, whenever autovacuum happened to leave the tables so.
              FROM terms t
              CROSS JOIN LATERAL (SELECT * FROM cp_sop_postings p WHERE p.word = t.word OFFSET 0) p
              CROSS JOIN cp_sop_search_stats st
              GROUP BY p.section_id
              -- the section id breaks ties: which tied sections fill the pool must not depend on the plan
              ORDER BY score DESC, p.section_id LIMIT :pool) best
        JOIN cp_sop_sections s ON s.id = best.section_id),
    nearest AS (
        SELECT id, file_path, heading, embedding <=> (SELECT embedding FROM cp_knowledge_entries WHERE id = :entry_id) AS distance
        FROM cp_sop_sections
        ORDER BY distance LIMIT :pool),
    ranked AS (
        SELECT coalesce(l.id, v.id) AS id, coalesce(l.file_path, v.file_path) AS file_path,
               coalesce(l.heading, v.heading) AS heading, 1 - v.distance AS similarity, l.score AS lexical,
               coalesce(1.0 / ({RRF_K} + l.rank), 0) + coalesce(1.0 / ({RRF_K} + v.rank), 0) AS fused,
               l.rank AS lexical_rank, v.rank AS vector_rank
        FROM (SELECT *, rank() OVER (ORDER BY score DESC) AS rank FROM lexical) l
        FULL JOIN (SELECT *, rank() OVER (ORDER BY distance) AS rank FROM nearest) v ON v.id = l.id),
    -- Best section per SOP, in SQL: the worker gets k rows, not the ~240 of both pools. `rrf` is the RRF score of
    -- the SOP's best section (the new-SOP module vote weighs by it); the section order within an SOP stays RRF.
    per_sop AS (
        SELECT file_path, max(fused) AS rrf, max(similarity) AS similarity, max(lexical) AS lexical,
               coalesce(bool_or(lexical_rank = 1) AND bool_or(vector_rank = 1), false) AS agreed,
               array_agg(heading ORDER BY fused DESC, heading) AS headings
        FROM ranked GROUP BY file_path),
    -- Each ranker's null for this entry (calibration.standings): the SOPs after its own top k, their median and
    -- standard deviation; `low` is its lowest pooled score, what an SOP outside its pool is given.
    places AS (
        SELECT similarity, lexical, row_number() OVER (ORDER BY similarity DESC NULLS LAST) AS v_n,
               row_number() OVER (ORDER BY lexical DESC NULLS LAST) AS l_n
        FROM per_sop),
    spreads AS (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY similarity) FILTER (WHERE v_n > :k) AS v_median,
               stddev_samp(similarity) FILTER (WHERE v_n > :k) AS v_sd, min(similarity) AS v_low,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY lexical) FILTER (WHERE l_n > :k) AS l_median,
               stddev_samp(lexical) FILTER (WHERE l_n > :k) AS l_sd, min(lexical) AS l_low
        FROM places),
    -- A deviation within rounding of the scores is no spread (calibration.NO_SPREAD): NULL, no say.
    nulls AS (
        SELECT v_median, v_low, l_median, l_low,
               CASE WHEN v_sd > {NO_SPREAD} * greatest(abs(v_median), 1) THEN v_sd END AS v_sd,
               CASE WHEN l_sd > {NO_SPREAD} * greatest(abs(l_median), 1) THEN l_sd END AS l_sd
        FROM spreads),
    -- Standing fusion: how many of the entry's own null deviations each ranker puts the SOP above chance, summed.
    -- Unlike RRF it keeps how far ahead an SOP is, not only its place. A ranker with no spread (too few SOPs
    -- after k) says nothing (0); with neither, the RRF order decides.
    standing AS (
        SELECT p.*, coalesce((coalesce(p.similarity, n.v_low) - n.v_median) / nullif(n.v_sd, 0), 0)
                    + coalesce((coalesce(p.lexical, n.l_low) - n.l_median) / nullif(n.l_sd, 0), 0) AS standing,
               coalesce(n.v_sd, 0) = 0 AS v_mute, coalesce(n.l_sd, 0) = 0 AS l_mute
        FROM per_sop p CROSS JOIN nulls n),
    -- :by_rrf orders by the RRF of the best sections instead (the new-SOP module vote: orphan_topics.home_module).
    ordered AS (SELECT *, row_number() OVER (ORDER BY CASE WHEN :by_rrf THEN rrf::float8 ELSE standing END DESC,
                                                      rrf DESC, file_path) AS n,
                       (l_mute AND coalesce(lexical = max(lexical) OVER (), false))
                       OR (v_mute AND coalesce(similarity = max(similarity) OVER (), false)) AS reserved
                FROM standing),
    -- A ranker whose null has no spread (an entry whose words only k+1 SOPs or fewer share) has no say in the
    -- standing; its best SOP still stays among the k, in its fused place, or the SOP only BM25 finds, the case
    -- lexical ranking is here for, is pushed out by the other ranker's order. (Reserving every ranker's best
    -- always cost make quality 2 of 198 entries' recall@3: a ranker with a say already weighs in.)
    top AS (SELECT * FROM (SELECT *, row_number() OVER (ORDER BY reserved DESC, n) AS pick FROM ordered) o
            WHERE pick <= :k),
    -- The planner settings are for this statement only: enable_seqscan goes back on as it runs (after planning), for the
    -- rest of the transaction; a SET of its own after it was a round trip per entry. Read when `top` has rows.
    seqscan_on AS (SELECT set_config('enable_seqscan', 'on', true))
SELECT t.file_path, t.headings,
       -- an SOP only the lexical side found: the embedder similarity of its best section, exactly
       coalesce(t.similarity, (SELECT 1 - min(s.embedding <=> (SELECT embedding FROM cp_knowledge_entries WHERE id = :entry_id))
                               FROM cp_sop_sections s WHERE s.file_path = t.file_path)),
       t.rrf::float8, t.standing::float8, t.agreed,
       -- the entry's baseline (calibration.baseline): the median similarity of the SOPs after its top k
       (SELECT v_median FROM nulls),
       (SELECT count(*) FROM per_sop), (SELECT count(*) FROM ranked),
       (SELECT array_agg(lexical::float8) FROM per_sop WHERE lexical IS NOT NULL),  -- each SOP's best BM25 score
       (SELECT standing::float8 FROM ordered WHERE n = :k + 1)  -- the standing of chance (chance_nulls)
FROM top t CROSS JOIN seqscan_on ORDER BY t.n
"""

_OTHER_SOPS_SQL = """
SELECT file_path, heading, similarity FROM (
    SELECT DISTINCT ON (file_path) file_path, heading,
           1 - (embedding <=> (SELECT embedding FROM cp_knowledge_entries WHERE id = :entry_id)) AS similarity
    FROM cp_sop_sections WHERE NOT (file_path = ANY(:seen))
    ORDER BY file_path, embedding <=> (SELECT embedding FROM cp_knowledge_entries WHERE id = :entry_id)) best
ORDER BY similarity DESC LIMIT :k
"""


class Ranking(NamedTuple):
    """An entry's fused top k and what the gate weighs them against."""

    hits: list[Hit]
    level: float | None  # the entry's baseline similarity (calibration.baseline over the SOPs of its nearest sections)
    lexical: float | None  # how far its best SOP by BM25 stands above the rest (calibration.lexical_excess)
    chance: float | None = None  # the standing of the SOP ranked k+1: what an unrelated SOP reaches (chance_nulls)
    lexical_scores: tuple[float, ...] = ()  # each SOP's best BM25 score (chance_nulls reads the SOP ranked k+1's)


def hybrid_sops(session: Session, *, entry_id: uuid.UUID, k: int, pool: int = POOL, by_rrf: bool = False) -> Ranking:
    """The k SOPs ranked by fused standing: per ranker (BM25, vector), how far the SOP's best section stands
    above the entry's own null (the SOPs after that ranker's top k), in null standard deviations, summed.

    by_rrf: rank by the reciprocal rank fusion of their best sections instead (as before standing fusion)."""
    pool = min(max(pool, k * 12), db.EF_SEARCH_MAX)  # the pool of a huge TOP_K stops there
    # The settings go in the same round trip as the query (psycopg2 returns the last statement's rows).
    # Prepared once per connection with a generic plan (prepared.py): planning it cost as much as running it.
    rows = prepared.execute(session, HYBRID_SQL, {"entry_id": entry_id, "pool": pool, "max_terms": MAX_TERMS, "k": k,
                                                 "by_rrf": by_rrf},
                            settings=PLANNER_SETTINGS.format(pool=int(pool))).all()
    if not rows:  # (no row: the statement did not turn enable_seqscan back on)
        session.execute(text("SET LOCAL enable_seqscan = on"))
        return Ranking([], None, None)
    hits = [Hit(sop_path=path, section=next((h for h in headings if not is_generic(h)), headings[0]),
                similarity=similarity if similarity is not None else 0.0, rrf=rrf, rank=i, standing=standing,
                agreed=agreed, sections=tuple(headings[:TOP_SECTIONS]))
            for i, (path, headings, similarity, rrf, standing, agreed, *_) in enumerate(rows, start=1)]
    level, sops, pooled, lexical, chance = rows[0][6:]
    if sops < k and pooled >= pool:
        # A few SOPs with many similar sections filled both pools: the other SOPs are ranked exactly, best
        # section per SOP, after every pooled one (they are farther than all of the vector pool). With at
        # most k SOPs in all, none is beyond the top k, so there is no baseline either way.
        hits += [Hit(sop_path=path, section=heading, similarity=float(similarity),
                     rrf=1.0 / (RRF_K + pool + i), rank=len(hits) + i, sections=(heading,))
                 for i, (path, heading, similarity) in enumerate(session.execute(text(_OTHER_SOPS_SQL), {
                     "entry_id": entry_id, "seen": [h.sop_path for h in hits], "k": k - len(hits)}), start=1)]
    return Ranking(hits, level, lexical_excess(lexical or [], k), chance, tuple(lexical or ()))


def chance_nulls(session: Session, *, entry_ids: Sequence[uuid.UUID], k: int,
                 sample: int = CHANCE_SAMPLE) -> tuple[list[float], list[float]]:
    """What an SOP an entry is not about reaches by chance, over a sample of entries (the first by id), read off
    the hybrid statement itself: (the lexical null: how far the SOP ranked k+1 by BM25 stands above the SOPs
    after it, calibration.lexical_excess; the standing null: the fused standing of the SOP ranked k+1)."""
    rankings = [hybrid_sops(session, entry_id=entry_id, k=k) for entry_id in sorted(entry_ids)[:sample]]
    return ([x for r in rankings if (x := lexical_excess(r.lexical_scores, k, rank=k)) is not None],
            [r.chance for r in rankings if r.chance is not None])


class Nulls(NamedTuple):
    """What a run's calibration is made of (calibration.calibrate's inputs)."""

    raw: list[float]  # calibration.null_scores: similarities of the SOPs after each sampled entry's top k
    excess: list[float]  # ... and per entry, how far the best of them stands above its baseline
    lexical: list[float]  # chance_nulls: the lexical null
    standing: list[float]  # ... and the standing null


def nulls(session: Session, *, entry_ids: Sequence[uuid.UUID], k: int) -> Nulls:
    """Both nulls of a run's calibration over a sample of entries (committed: see below).

    They are independent reads, a few hundred nearest-section searches each: on a session of its own engine
    (the committed state) the vector null is measured on a second connection while this one measures the
    hybrid one (0.24 of the 1.7 s a 1,000 x 42 start took). A session joined to a caller's connection (a dry
    run: its writes are visible on that connection only) measures them one after the other."""
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        return Nulls(*calibration.null_scores(session, entry_ids=entry_ids, k=k), *chance_nulls(session, entry_ids=entry_ids, k=k))

    def vector_null() -> tuple[list[float], list[float]]:
        with Session(bind=bind) as other:  # read only; its transaction ends with it
            return calibration.null_scores(other, entry_ids=entry_ids, k=k)

    vector = background.start([vector_null], 2, "null")
    try:
        lexical, standing = chance_nulls(session, entry_ids=entry_ids, k=k)
    except BaseException:
        if isinstance(error := vector()[0], Exception):  # (waits) logged, not raised over the caller's error
            log.warning("the vector null failed as well: %s", error)
        raise
    if isinstance(found := vector()[0], Exception):
        raise found
    return Nulls(*found, lexical, standing)


def calibrated(session: Session, *, entry_ids: Sequence[uuid.UUID], model: str, settings: Settings) -> dict:
    """A run's calibration record (calibration.calibrate) from both nulls over a sample of its entries."""
    found = nulls(session, entry_ids=entry_ids, k=settings.top_k)
    return calibration.calibrate(found.raw, found.excess, model=model, settings=settings, lexical=found.lexical,
                                 standing=found.standing)


def sop_texts(session: Session, paths: list[str]) -> dict[str, tuple[str, str]]:
    """path → (title, text) from the SOP cache."""
    return {path: (title, content) for path, title, content in session.execute(
        select(SopEmbedding.file_path, SopEmbedding.title, SopEmbedding.content).where(SopEmbedding.file_path.in_(paths)))}


def candidates(session: Session, *, entry_id: uuid.UUID, k: int, gate: Gate,
               texts: Callable[[list[str]], dict[str, tuple[str, str]]] | None = None) -> tuple[float | None, list[Candidate]]:
    """The best similarity among the fused top k, and the candidates worth the classifier's time, in fused order.

    texts: path → (title, text) of SOPs (default: read from the SOP cache; the worker's hot path caches them per run).
    """
    hits, level, lexical, *_ = hybrid_sops(session, entry_id=entry_id, k=k)
    if not hits:
        return None, []
    bands = gate.bands([h.similarity for h in hits], level, hits[0].agreed, lexical, hits[0].standing)
    kept = [(h, b) for h, b in zip(hits, bands, strict=True) if b != "none"]
    rows = (texts or (lambda paths: sop_texts(session, paths)))([h.sop_path for h, _ in kept]) if kept else {}
    return max(h.similarity for h in hits), [
        Candidate(sop_path=h.sop_path, title=rows[h.sop_path][0], section=h.section, similarity=h.similarity,
                  band=b, sop_text=rows[h.sop_path][1], sections=list(h.sections))
        for h, b in kept if h.sop_path in rows
    ]

