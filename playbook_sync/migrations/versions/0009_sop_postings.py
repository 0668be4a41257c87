"""sop postings: (lexeme, section) → term frequency, so BM25 reads only an entry's query terms

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cp_sop_postings",
        sa.Column("word", sa.Text(), nullable=False),
        sa.Column("section_id", UUID(as_uuid=True), nullable=False),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["section_id"], ["cp_sop_sections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("word", "section_id"),
    )
    op.create_index("ix_cp_sop_postings_section_id", "cp_sop_postings", ["section_id"])
    # The sections already stored (lexicon.refresh_lexicon does the same for new ones).
    op.execute("INSERT INTO cp_sop_postings (word, section_id, tf, length) "
               "SELECT u.lexeme, s.id, array_length(u.positions, 1), length(s.search) "
               "FROM cp_sop_sections s CROSS JOIN LATERAL unnest(s.search) AS u")


def downgrade() -> None:
    op.drop_index("ix_cp_sop_postings_section_id", table_name="cp_sop_postings")
    op.drop_table("cp_sop_postings")
