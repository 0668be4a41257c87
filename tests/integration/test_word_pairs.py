"""Word pairs in the lexical ranking (issue 11): a step named in the playbook's own words outranks a section that
only has the same words apart. On the real database: the pairs are PostgreSQL's lexemes, read in SQL."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from playbook_sync import db, lexicon, retrieval
from playbook_sync.models import SopPosting, SopSection
from playbook_sync.providers.offline import CLAUSE_MARKS
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


def test_dates_codes_paths_and_numbers_with_a_hyphen_are_not_hyphenated_words(database_url):
    # PostgreSQL writes "-12", "-2026", "/next-step" and "1e-5" with a hyphen too, but no parts follow them.
    assert pairs_of(database_url, "on 2026-12-04 kickoff meeting agenda") == ["2026 -12", "-12 -04", "-04 kickoff",
                                                                             "kickoff meet", "meet agenda"]
    assert pairs_of(database_url, "Q3-2026 plan review") == ["q3 -2026", "-2026 plan", "plan review"]
    assert pairs_of(database_url, "follow-up/next-step plan") == ["follow-up /next-step", "/next-step plan"]
    assert pairs_of(database_url, "a 1e-5 the plan review") == ["1e-5 plan", "plan review"]
    assert pairs_of(database_url, "covid-19-related plan") == ["covid -19", "-19 relat", "relat plan"]  # not one word to it
    assert pairs_of(database_url, "state-of-the-art pipeline") == ["state-of-the-art pipelin"]


def oracle(url: str, body: str) -> list[str]:
    """The same pairs from PostgreSQL's token types (ts_debug) instead of positions: a hyphenated word's parts are
    the tokens of type hword_part, hword_asciipart and hword_numpart. Slower, so not what retrieval runs."""
    out: list[str] = []
    with db.session_scope(url) as session:
        for clause in session.scalars(text("SELECT regexp_split_to_table(:b, :marks)"), {"b": body, "marks": CLAUSE_MARKS}):
            words = [lexemes[0] for alias, lexemes in session.execute(text("SELECT alias, lexemes FROM ts_debug('english', :c)"),
                                                                     {"c": clause})
                     if lexemes and alias not in ("hword_part", "hword_asciipart", "hword_numpart")]
            out += [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    return sorted(out)


FRAGMENTS = ("go-live", "date", "the", "of", "state-of-the-art", "b2b-saas", "x-ray-ready", "1e-5", "2026-12-04", "Q3-2026",
             "/next-step", "café-über", "plan", "plans", "re-baselining", "-", "--", ".", ",", ";", "(", ")", "\n", " – ", "'s",
             "don't", "e-mail", "a@b-c.io", "https://x-y.com/a-b", "3-day", "pre-", "-post", "Success", "PLAN", "😀", "\u00a0")


TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # what a PostgreSQL text can hold


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(TEXT, max_size=8)), max_size=40).map(" ".join))
def test_pairs_are_the_ones_postgresql_token_types_give(database_url, body):
    found = pairs_of(database_url, body)
    assert all(len(pair.split(" ")) == 2 for pair in found)  # a lexeme never holds a space: always two of them
    assert sorted(found) == oracle(database_url, body)


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


def test_a_migrated_database_holds_the_index_the_code_builds(database_url):
    named = sop("docs/sops/module-1-a/sop-1-1-named.md", "SOP 1.1: Kickoff", {"1a. Success Plan": "Write the success plan."})
    load(database_url, {"docs/sops/module-1-a/sop-1-1-named.md": (named, [vec(1)])}, "Is the success plan signed?", vec(1))
    index = "SELECT array_agg(t ORDER BY t) FROM (SELECT word || tf AS t FROM cp_sop_postings UNION ALL " \
            "SELECT 'sop:' || word || ndoc FROM cp_sop_lexicon UNION ALL SELECT 'entry:' || word || ndoc FROM cp_entry_lexicon) x"
    with db.session_scope(database_url) as session:
        lexicon.refresh_entry_lexicon(session)
    with db.session_scope(database_url) as session:
        built = session.scalar(text(index))
    assert {"sop:success plan1", "entry:success plan1"} <= set(built) and any(t.startswith("success plan") for t in built)
    db.downgrade(database_url, "0010")  # the code before pairs: its index has none
    with db.session_scope(database_url) as session:
        assert not [t for t in session.scalar(text(index)) if " " in t]
    db.upgrade(database_url)  # 0011 builds the pairs at once, not at the next run's start
    with db.session_scope(database_url) as session:
        assert session.scalar(text(index)) == built


def test_a_long_entry_keeps_its_most_informative_words_beside_its_pairs(database_url):
    words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
             "romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cobalt dune ember fjord glacier "
             "harbor iris jasper").split()
    body = " ".join(words)
    doc = sop("docs/sops/module-1-a/sop-1-1-long.md", "SOP 1.1: Long", {"1a. Everything": body})
    entry_id = load(database_url, {"docs/sops/module-1-a/sop-1-1-long.md": (doc, [vec(1)])}, body, vec(1))
    terms = retrieval.HYBRID_SQL.split("    lexical AS (")[0].rstrip().rstrip(",") + " SELECT word FROM terms"
    with db.session_scope(database_url) as session:
        chosen = list(session.scalars(text(terms), {"entry_id": entry_id, "max_terms": retrieval.MAX_TERMS}))
    # Pairs are rarer than their words and would fill one list of MAX_TERMS: each kind has a list of its own.
    assert len([w for w in chosen if " " not in w]) == retrieval.MAX_TERMS < len(words)
    assert len([w for w in chosen if " " in w]) == retrieval.MAX_TERMS


def test_past_what_postgresql_keeps_of_a_clause_nothing_is_paired(database_url):
    # A lexeme keeps 255 positions at most: after its last one, which words are next to each other is unknown.
    body = " ".join(f"plan {chr(97 + i // 26)}{chr(97 + i % 26)}x" for i in range(300))
    found, truth = pairs_of(database_url, body), oracle(database_url, body)
    assert found and not set(found) - set(truth)  # every pair it gives is two words next to each other
    assert len(found) < len(truth)  # and it stops where "plan" has no positions left


def test_a_database_whose_ctype_is_c_takes_a_non_ascii_hyphenated_word_whole(pg_socket):
    from tests.conftest import _admin_sql, postgres_url

    name = "t_c_ctype"
    _admin_sql(pg_socket, f'DROP DATABASE IF EXISTS "{name}"')
    _admin_sql(pg_socket, f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_CTYPE 'C' LC_COLLATE 'C' ENCODING 'UTF8'")
    url = postgres_url(pg_socket, name)
    try:
        assert pairs_of(url, "review café-über plan") == ["review café-über", "café-über plan"]
        assert [p.lower() for p in pairs_of(url, "Москва-река plan")] == ["москва-река plan"]  # (C does not lowercase it)
    finally:
        db.get_engine(url).dispose()
        _admin_sql(pg_socket, f'DROP DATABASE IF EXISTS "{name}"')
