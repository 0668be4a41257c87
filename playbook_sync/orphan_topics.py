"""Which orphans share a new topic: words the playbook never uses and only orphans use.

Embedding clusters of orphans group entries by how they are phrased as much as by what they
are about: calls repeat the same openings ("Prospects keep asking whether our API
exposes ..."), so true matches the classifier passed over formed clusters of their own and
were promoted into SOPs nobody wanted, while a real new topic told in four different ways
scattered over several clusters. What marks a topic the playbook lacks is its vocabulary:
a word (PostgreSQL's English stemming, as retrieval uses) that
- no SOP section contains (the playbook's own lexicon, cp_sop_lexicon) and no callout we wrote into one,
- no entry that found a home uses (every entry with it was orphaned: phrasing shared with
  matched entries, names of people and companies, weekdays all fall out here),
- no orphan already made into an SOP uses (that topic has its SOP; its growth goes there),
- and enough orphans from enough distinct sources use (the settings' cluster minimums);
- and a topic is held together by at least two such words (see topic_groups).
Orphans are grouped by such words (words whose orphans overlap join one topic); nothing here
is a threshold fitted to one corpus.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from itertools import combinations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from playbook_sync.models import SopEmbedding
from playbook_sync.retrieval import hybrid_sops

_TOPIC_WORDS_SQL = """
WITH words AS (
    SELECT DISTINCT e.id, coalesce(e.source_ref, 'entry:' || e.id::text) AS source, w AS word,
           m.cluster_id, c.status
    FROM cp_knowledge_entries e
    JOIN cp_orphan_members m ON m.entry_id = e.id
    JOIN cp_orphan_clusters c ON c.id = m.cluster_id
    CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('english', e.content || ' ' || coalesce(e.context, '')))) AS w),
homed AS (
    SELECT DISTINCT w AS word
    FROM cp_knowledge_entries e
    JOIN cp_sync_run_items i ON i.entry_id = e.id AND i.status IN ('matched', 'enriched', 'redundant')
    CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('english', e.content || ' ' || coalesce(e.context, '')))) AS w),
-- The callouts we wrote are in the playbook too, though its lexicon leaves them out (retrieval reads what the SOPs
-- themselves say: callouts.without_blocks): what they say is covered, and a topic made of it would repeat them.
written AS (
    SELECT DISTINCT w AS word
    FROM cp_inserted_callouts c
    CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('english', c.block))) AS w
    WHERE c.commit_sha IS NOT NULL)
SELECT word, array_agg(DISTINCT id) AS ids
FROM words
WHERE status = 'open'
  AND word NOT IN (SELECT word FROM cp_sop_lexicon)
  AND word NOT IN (SELECT word FROM written)
  AND word NOT IN (SELECT word FROM homed)
  AND word NOT IN (SELECT word FROM words WHERE status <> 'open')
  AND length(word) > 2
GROUP BY word
HAVING count(DISTINCT id) >= :min_entries AND count(DISTINCT source) >= :min_sources
ORDER BY word
"""


def topic_groups(session: Session, *, min_entries: int, min_sources: int) -> list[list[uuid.UUID]]:
    """Groups of open orphans that share topic words (see the module doc), largest first."""
    rows = session.execute(text(_TOPIC_WORDS_SQL), {"min_entries": min_entries, "min_sources": min_sources}).all()
    words = [set(ids) for _word, ids in rows]  # per topic word, the orphans using it
    groups = _merge(words)
    # A subject comes with words of its own, used together ("booth" and "badge" in the same notes, "marketplace"
    # and "private offer"); one odd word shared by a few orphans is as often a way of saying a concept the
    # playbook has ("advocate" for "champion"), and an SOP built on it draws next week's entries away from their
    # home. Nor are two such words a subject when a single note is all that joins them ("money person" in three
    # notes, "advocate" in three others, one note saying both): that one note may simply mention two things. A
    # group stays an open cluster until two of its words are used together in more than one of its notes.
    return [g for g in groups if _corroborated(set(g), words)]


def _corroborated(group: set[uuid.UUID], words: list[set[uuid.UUID]]) -> bool:
    """Two of the group's topic words (each: the orphans using it) are used together by more than one orphan."""
    within = [ids & group for ids in words if len(ids & group) > 1]
    return any(len(a & b) > 1 for a, b in combinations(within, 2))


def _merge(sets: Iterable[set[uuid.UUID]]) -> list[list[uuid.UUID]]:
    """Union of overlapping sets (one topic told with several of its words), each sorted, largest first."""
    groups: list[set[uuid.UUID]] = []
    for ids in sets:
        overlapping = [g for g in groups if g & ids]
        merged = set(ids).union(*overlapping)
        groups = [g for g in groups if not g & ids] + [merged]
    return sorted((sorted(g) for g in groups), key=lambda g: (-len(g), str(g[0])))


def home_module(session: Session, *, entry_ids: Iterable[uuid.UUID], modules: set[str], k: int) -> str | None:
    """The module a new topic belongs to: the one its entries' fused top-k SOPs come from, weighted by
    their reciprocal-rank-fusion score (None when retrieval finds none of `modules`).

    Not the SOP nearest to the cluster's centroid: a whole long SOP's vector is an average of many
    subjects, and a centroid of differently phrased entries is near nothing in particular, while each
    entry's own ranking (lexical and vector, best section per SOP) says where its neighbours live."""
    votes: dict[str, float] = {}
    for entry_id in entry_ids:
        # The RRF ranking, not the standing one candidates are ordered by: a standing is on each entry's own
        # scale (and negative below chance), so summed over entries it does not weigh neighbours alike, and
        # measured, voting by standing moved a planted topic of `make quality` to another module folder.
        for hit in hybrid_sops(session, entry_id=entry_id, k=k, by_rrf=True).hits:
            votes[hit.sop_path] = votes.get(hit.sop_path, 0.0) + hit.rrf
    if not votes:
        return None
    per_module: dict[str, float] = {}
    for path, module in session.execute(select(SopEmbedding.file_path, SopEmbedding.module)
                                        .where(SopEmbedding.file_path.in_(list(votes)))):
        if module in modules:
            per_module[module] = per_module.get(module, 0.0) + votes[path]
    return max(sorted(per_module), key=per_module.get) if per_module else None
