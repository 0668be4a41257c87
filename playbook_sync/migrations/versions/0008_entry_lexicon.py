"""entry lexicon (query-side IDF of retrieval) and SOP postings (BM25's inverted index)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cp_entry_lexicon",
        sa.Column("word", sa.Text(), primary_key=True),
        sa.Column("ndoc", sa.Integer(), nullable=False),
    )
    op.add_column("cp_sop_search_stats", sa.Column("entries", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "cp_sop_postings",
        sa.Column("word", sa.Text(), primary_key=True),
        sa.Column("section_id", sa.UUID(), primary_key=True),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
    )
    # Postings of the sections already cached, so retrieval keeps its lexical side before any SOP changes.
    op.execute("INSERT INTO cp_sop_postings (word, section_id, tf, length) "
               "SELECT u.lexeme, s.id, coalesce(array_length(u.positions, 1), 1), length(s.search) "
               "FROM cp_sop_sections s CROSS JOIN LATERAL unnest(s.search) AS u")


def downgrade() -> None:
    op.drop_table("cp_sop_postings")
    op.drop_column("cp_sop_search_stats", "entries")
    op.drop_table("cp_entry_lexicon")
