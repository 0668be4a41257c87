"""entry lexicon: document frequency of lexemes over the knowledge base (query-side IDF of retrieval)

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


def downgrade() -> None:
    op.drop_column("cp_sop_search_stats", "entries")
    op.drop_table("cp_entry_lexicon")
