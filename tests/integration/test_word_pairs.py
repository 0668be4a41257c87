"""Word pairs in the lexical ranking (issue 11): a step named in the playbook's own words outranks a section that
only has the same words apart. On the real database: the pairs are PostgreSQL's lexemes, read in SQL."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from playbook_sync import db, lexicon, retrieval
from playbook_sync.models import SopPosting, SopSection
from tests.integration.test_hybrid import load, sop, vec

pytestmark = pytest.mark.integration


def pairs_of(url: str, body: str) -> list[str]:
    with db.session_scope(url) as session:
        return list(session.scalars(text(f"SELECT lexeme FROM ({lexicon.pairs(':body')}) z"), {"body": body}))


def test_pairs_skip_stopwords_stop_at_clauses_and_take_a_hyphenated_word_whole(database_url):
    found = pairs_of(database_url, "Tie the go-live date to the success plan. Then: pre-call research, mid-market\nteam")
    # "to the" are stopwords; ". Then:", "," and the line break end clauses; "go-live" is one word, not go + live.
    assert found == ["tie go-liv", "go-liv date", "date success", "success plan", "pre-cal research"]
    assert pairs_of(database_url, "success plan, success plan") == ["success plan", "success plan"]  # once per place
    assert pairs_of(database_url, "") == [] and pairs_of(database_url, "plan") == [] and pairs_of(database_url, "...") == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300))
def test_any_text_gives_pairs_of_two_lexemes_without_an_error(database_url, body):
    for pair in pairs_of(database_url, body):
        first, second = pair.split(" ")  # a lexeme never holds a space: a pair is always exactly two of them
        assert first and second
        assert second not in first.split("-") or "-" not in first  # a hyphenated word never pairs with its own part


def test_the_section_that_names_the_step_outranks_one_with_its_words_apart(database_url):
    named = sop("docs/sops/module-1-a/sop-1-1-named.md", "SOP 1.1: Kickoff",
                {"1a. Kickoff Agenda": "Open the kickoff with introductions, confirm the agenda, review the timeline, "
                                       "agree the success plan, and book the next meeting with the sponsor and the team."})
    apart = sop("docs/sops/module-1-a/sop-1-2-apart.md", "SOP 1.2: Planning",
                {"1a. Planning Cadence": "Every plan names a success metric. Success depends on the plan. "
                                         "A plan reviewed weekly keeps success visible."})
    same = [vec(1, 1)]  # the vectors cannot tell the two apart: the lexical side decides
    entry_id = load(database_url, {"docs/sops/module-1-a/sop-1-1-named.md": (named, same),
                                   "docs/sops/module-1-a/sop-1-2-apart.md": (apart, same)},
                    "Buyers sign faster once the success plan exists.", vec(1, 1))
    with db.session_scope(database_url) as session:
        pair_rows = session.execute(select(SopSection.file_path, SopPosting.tf).join(SopPosting, SopPosting.section_id == SopSection.id)
                                    .where(SopPosting.word == "success plan")).all()
        hits, *_ = retrieval.hybrid_sops(session, entry_id=entry_id, k=2)
    assert [h.sop_path for h in hits] == ["docs/sops/module-1-a/sop-1-1-named.md", "docs/sops/module-1-a/sop-1-2-apart.md"]
    assert [path for path, _ in pair_rows] == ["docs/sops/module-1-a/sop-1-1-named.md"]


def test_an_upgraded_database_rebuilds_its_postings_with_pairs_on_the_next_refresh(database_url):
    named = sop("docs/sops/module-1-a/sop-1-1-named.md", "SOP 1.1: Kickoff", {"1a. Success Plan": "Write the success plan."})
    load(database_url, {"docs/sops/module-1-a/sop-1-1-named.md": (named, [vec(1)])}, "success plan", vec(1))
    db.downgrade(database_url, "0010")
    with db.session_scope(database_url) as session:
        assert session.scalar(text("SELECT count(*) FROM cp_sop_postings WHERE strpos(word, ' ') > 0")) == 0
    db.upgrade(database_url)
    with db.session_scope(database_url) as session:
        assert lexicon.lexicon_missing(session)  # so the next run's start refreshes it (pipeline.py)
        lexicon.refresh_lexicon(session)
        assert session.scalar(text("SELECT ndoc FROM cp_sop_lexicon WHERE word = 'success plan'")) == 1
