"""Bands at their edges with controlled vectors, through pgvector's cosine distance."""

from __future__ import annotations

import uuid

import pytest

from playbook_sync import lexicon, matching, retrieval, store
from playbook_sync.calibration import Gate
from playbook_sync.config import Bands
from playbook_sync.models import DIMENSIONS, KnowledgeEntry, SopEmbedding, SopSection
from playbook_sync.schemas import EntryIn

pytestmark = pytest.mark.integration


def vec(*head: float) -> list[float]:
    return list(head) + [0.0] * (DIMENSIONS - len(head))


# Cosines exact in float32 and double: (0.75, .5, .25, .25, .25) is a unit vector;
# (3, 4) against (5, 0) has cosine 15/25 = 0.6.
CASES = {
    "docs/strong-edge.md": (vec(1, 0, 0, 0, 0), vec(0.75, 0.5, 0.25, 0.25, 0.25), "strong"),
    "docs/weak-edge.md": (vec(5, 0), vec(3, 4), "weak"),
    "docs/below-weak.md": (vec(5, 0), vec(3, 4.0001), "none"),
    "docs/below-strong.md": (vec(1, 0, 0, 0, 0), vec(0.7499, 0.5, 0.25, 0.25, 0.25), "weak"),
}


def test_band_edges(deps):
    bands = Bands(strong=0.75, weak=0.60)
    for path, (query, section, expected) in CASES.items():
        with deps.session() as s:
            s.query(SopEmbedding).delete()
            row = SopEmbedding(file_path=path, content_hash="x", embedding_model="m", title=path, content="---\n", embedding=section)
            s.add(row)
            s.flush()
            s.add(SopSection(sop_embedding_id=row.id, file_path=path, heading="H", position=0, embedding=section))
        with deps.session() as s:
            best, cands = matching.candidates(s, vector=query, k=3, bands=bands)
        assert matching.band(best, bands) == expected, (path, best)
        assert [c.band for c in cands] == ([] if expected == "none" else [expected])


def test_best_section_decides_and_top_k_distinct_sops(deps):
    with deps.session() as s:
        for i in range(5):
            row = SopEmbedding(file_path=f"docs/s{i}.md", content_hash="x", embedding_model="m", title=f"S{i}", content="", embedding=vec(1))
            s.add(row)
            s.flush()
            # each SOP has a far section and a near one; the near one decides
            s.add(SopSection(sop_embedding_id=row.id, file_path=row.file_path, heading="far", position=0, embedding=vec(0, 1)))
            s.add(SopSection(sop_embedding_id=row.id, file_path=row.file_path, heading="near", position=1, embedding=vec(1, 0.1 * i)))
    with deps.session() as s:
        nearest = matching.nearest_sops(s, vector=vec(1, 0), k=3)
    assert [p for p, _, _ in nearest] == ["docs/s0.md", "docs/s1.md", "docs/s2.md"]
    assert {h for _, h, _ in nearest} == {"near"}
    with deps.session() as s:  # k * 12 sections past pgvector's ef_search limit (1,000): refused before the cap
        everything = matching.nearest_sops(s, vector=vec(1, 0), k=100)
    assert [p for p, _, _ in everything] == [f"docs/s{i}.md" for i in range(5)]


def _flood(deps, flood: int) -> None:
    """docs/flood.md: `flood` sections nearer than anything else; a..d: one near section each, farther and farther."""
    with deps.session() as s:
        s.query(SopSection).delete()
        s.query(SopEmbedding).delete()
        row = SopEmbedding(file_path="docs/flood.md", content_hash="x", embedding_model="m", title="Flood", content="", embedding=vec(1))
        s.add(row)
        s.flush()
        s.add_all(SopSection(sop_embedding_id=row.id, file_path=row.file_path, heading=f"f{i}", position=i,
                             embedding=vec(1, 0.001 * (i + 1))) for i in range(flood))
        for name, near in (("a", 0.5), ("b", 0.8), ("c", 1.5), ("d", 3.0)):
            row = SopEmbedding(file_path=f"docs/{name}.md", content_hash="x", embedding_model="m", title=name, content="", embedding=vec(1))
            s.add(row)
            s.flush()
            s.add(SopSection(sop_embedding_id=row.id, file_path=row.file_path, heading="far", position=0, embedding=vec(0, 1)))
            s.add(SopSection(sop_embedding_id=row.id, file_path=row.file_path, heading="near", position=1, embedding=vec(1, near)))


FLOOD_SIMILARITIES = [round(1 / (1 + 1e-6) ** 0.5, 4), round(1 / 1.25 ** 0.5, 4), round(1 / 1.64 ** 0.5, 4)]


def test_an_sop_with_many_similar_sections_does_not_crowd_out_the_others(deps):
    """One SOP whose sections all sit nearer than anything else fills the nearest-section pool;
    candidates are per SOP, so the next SOPs still come back, each with its best section.
    The run's entry point is retrieval.candidates (hybrid); matching.nearest_sops is the vector-only ranking."""
    _flood(deps, 4 * max(3 * matching.SECTIONS_PER_SOP, 40, retrieval.POOL))  # several times either pool
    entry_id = uuid.uuid4()
    with deps.session() as s:
        store.upsert_entries(s, entries=[EntryIn(id=entry_id, category="insight", content="x", transcript_type="sales")])
        s.flush()
        row = s.get(KnowledgeEntry, entry_id)
        row.embedding, row.embedding_model = vec(1, 0), "m"
    with deps.session() as s:
        lexicon.refresh_lexicon(s)
        hits = retrieval.hybrid_sops(s, entry_id=entry_id, k=3).hits
        best_h, cands_h = retrieval.candidates(s, entry_id=entry_id, k=3, gate=Gate(mode="absolute", strong=0.9, weak=0.5))
    assert [(h.sop_path, h.section) for h in hits] == [("docs/flood.md", "f0"), ("docs/a.md", "near"), ("docs/b.md", "near")]
    assert [round(h.similarity, 4) for h in hits] == FLOOD_SIMILARITIES
    assert round(best_h, 4) == FLOOD_SIMILARITIES[0]
    assert [(c.sop_path, c.section, c.band) for c in cands_h] == [
        ("docs/flood.md", "f0", "strong"), ("docs/a.md", "near", "weak"), ("docs/b.md", "near", "weak")]
    with deps.session() as s:
        nearest = matching.nearest_sops(s, vector=vec(1, 0), k=3)
        best, cands = matching.candidates(s, vector=vec(1, 0), k=3, bands=Bands(strong=0.9, weak=0.5))
    assert [(p, h) for p, h, _ in nearest] == [("docs/flood.md", "f0"), ("docs/a.md", "near"), ("docs/b.md", "near")]
    assert [round(sim, 4) for _, _, sim in nearest] == FLOOD_SIMILARITIES
    assert [(c.sop_path, c.band) for c in cands] == [("docs/flood.md", "strong"), ("docs/a.md", "weak"), ("docs/b.md", "weak")]
