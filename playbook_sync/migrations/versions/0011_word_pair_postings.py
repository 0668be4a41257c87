"""word pairs in the BM25 index: the postings and both lexicons rebuilt with them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# lexicon.pairs as of this revision, frozen here as a migration must be: the word pairs of a text, each lexeme with
# the next one in its clause, the parts of a hyphenated word left out, nothing paired where positions are unknown.
_CLAUSE = r"""[.!?;:,()\[\]"\n]+|\s[-–—]+\s"""


def _pairs(body: str) -> str:
    parts = "length(u.lexeme) - length(replace(u.lexeme, '-', '')) + 1"
    known = "CASE WHEN cardinality(u.positions) >= 255 THEN u.positions[cardinality(u.positions)] END"
    return ("SELECT y.lexeme || ' ' || y.next AS lexeme FROM ("
            "SELECT x.lexeme, lead(x.lexeme) OVER (PARTITION BY x.n ORDER BY x.p) AS next FROM ("
            rf"SELECT c.n, u.lexeme, p, max(CASE WHEN u.lexeme ~ '^[^-/.@\s]+(-[^-/.@\s]+)+$' AND u.lexeme !~ '^[0-9.]+e-[0-9]+$' "
            f"THEN p + {parts} END) "
            "OVER (PARTITION BY c.n ORDER BY p ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS parts_end, "
            f"min({known}) OVER (PARTITION BY c.n) AS known_until "
            f"FROM regexp_split_to_table({body}, '{_CLAUSE}') WITH ORDINALITY AS c(clause, n) "
            "CROSS JOIN LATERAL unnest(to_tsvector('english', c.clause)) u CROSS JOIN LATERAL unnest(u.positions) p "
            "WHERE p < 16383) x "
            "WHERE x.p > coalesce(x.parts_end, 0) AND x.p <= coalesce(x.known_until, x.p)) y WHERE y.next IS NOT NULL")


def upgrade() -> None:
    # Rebuilt here, not left to the next run: its start refreshes the index only when SOPs changed, and until
    # then the lexical ranking would have no postings at all. A database without sections gets nothing.
    sections, entries = _pairs("coalesce(s.body, '')"), _pairs("e.content || chr(10) || coalesce(e.context, '')")
    op.execute("INSERT INTO cp_sop_postings (word, section_id, tf, length) "
               f"SELECT w.lexeme, s.id, count(*), length(s.search) FROM cp_sop_sections s CROSS JOIN LATERAL ({sections}) w "
               "GROUP BY w.lexeme, s.id, length(s.search)")
    op.execute("DELETE FROM cp_sop_lexicon")
    op.execute("INSERT INTO cp_sop_lexicon (word, ndoc) SELECT word, count(*) FROM cp_sop_postings GROUP BY word")
    op.execute("INSERT INTO cp_entry_lexicon (word, ndoc) SELECT w.lexeme, count(DISTINCT e.id) "
               f"FROM cp_knowledge_entries e CROSS JOIN LATERAL ({entries}) w GROUP BY w.lexeme")


def downgrade() -> None:
    # The older code reads single lexemes only; a pair row would never match one of its query words.
    for table in ("cp_sop_postings", "cp_sop_lexicon", "cp_entry_lexicon"):
        op.execute(f"DELETE FROM {table} WHERE strpos(word, ' ') > 0")
