"""lessons.top_many (and top / top_for built on it): each SOP's top lessons in one query, on real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from playbook_sync.lessons import TOP_K, remember, top, top_for, top_many
from tests.integration.test_learning import COLD, T0
from tests.support import sql_statements

pytestmark = pytest.mark.integration


def test_top_many_gives_each_sops_top_lessons_in_one_query(deps):
    other, absent = "docs/sops/module-3/sop-3-2-handle-objections.md", "docs/sops/none.md"
    said = ["Keep tips about subject lines short.", "Editors rewrote a question callout here: match its tone.",
            "Never promise a delivery date in a cold email.", "Name the prospect's tool, not ours.",
            "Put the pricing question under Common Mistakes.", "A results note needs its numbers.",
            "Quote the objection the way the buyer said it."]
    with deps.session() as s:
        for i, text in enumerate(said):  # more than TOP_K for COLD, of different ages
            remember(s, sop_path=COLD, category="insight", kind="declined", text=text, now=T0 - timedelta(days=7 * i))
        remember(s, sop_path=other, category="question", kind="edited", text=said[-1], now=T0)
        s.flush()
        with sql_statements(deps.settings.database_url) as statements:
            many = top_many(s, [COLD, other, absent, COLD], now=T0)
            assert len(statements) == 1
            # By category (what the per-entry path asks for): only that category's lessons, one query too.
            assert top_for(s, [COLD, other], "question", now=T0) == {COLD: [], other: [said[-1]]}
            assert len(statements) == 2
        assert many == {COLD: top(s, COLD, now=T0), other: top(s, other, now=T0), absent: []}
        assert len(many[COLD]) == TOP_K and many[COLD][0] == said[0]  # the freshest first
