"""Bands at their edges with controlled vectors, through pgvector's cosine distance."""

from __future__ import annotations

import pytest

from playbook_sync import matching
from playbook_sync.config import Bands
from playbook_sync.models import DIMENSIONS, SopEmbedding, SopSection

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


def test_an_sop_with_many_similar_sections_does_not_crowd_out_the_others(deps):
    """One SOP whose sections all sit nearer than anything else fills the nearest-section pool;
    candidates are per SOP, so the next SOPs still come back, each with its best section."""
    flood = 4 * max(3 * matching.SECTIONS_PER_SOP, 40)  # several times the pool
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
    with deps.session() as s:
        nearest = matching.nearest_sops(s, vector=vec(1, 0), k=3)
        best, cands = matching.candidates(s, vector=vec(1, 0), k=3, bands=Bands(strong=0.9, weak=0.5))
    assert [(p, h) for p, h, _ in nearest] == [("docs/flood.md", "f0"), ("docs/a.md", "near"), ("docs/b.md", "near")]
    assert [round(sim, 4) for _, _, sim in nearest] == [round(1 / (1 + 1e-6) ** 0.5, 4), round(1 / 1.25 ** 0.5, 4),
                                                         round(1 / 1.64 ** 0.5, 4)]
    assert [(c.sop_path, c.band) for c in cands] == [("docs/flood.md", "strong"), ("docs/a.md", "weak"), ("docs/b.md", "weak")]
