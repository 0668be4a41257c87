"""hybrid retrieval: section text + generated tsvector (GIN), lexicon for BM25, run calibration

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SEARCH = "to_tsvector('english'::regconfig, COALESCE(body, ''::text))"


def upgrade() -> None:
    op.add_column("cp_sop_sections", sa.Column("body", sa.Text(), nullable=True))
    op.add_column("cp_sop_sections", sa.Column("search", postgresql.TSVECTOR(), sa.Computed(SEARCH, persisted=True),
                                               nullable=True))
    op.create_index("ix_cp_sop_sections_search", "cp_sop_sections", ["search"], postgresql_using="gin")
    op.create_table(
        "cp_sop_lexicon",
        sa.Column("word", sa.Text(), primary_key=True),
        sa.Column("ndoc", sa.Integer(), nullable=False),
    )
    op.create_table(
        "cp_sop_search_stats",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sections", sa.Integer(), nullable=False),
        sa.Column("avg_length", sa.Float(), nullable=False),
    )
    op.add_column("cp_playbook_sync_runs", sa.Column("calibration", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    # Cached sections have no text yet: mark every cached SOP stale so the next run re-reads (and re-embeds) it.
    op.execute("UPDATE cp_sop_embeddings SET content_hash = ''")


def downgrade() -> None:
    op.drop_column("cp_playbook_sync_runs", "calibration")
    op.drop_table("cp_sop_search_stats")
    op.drop_table("cp_sop_lexicon")
    op.drop_index("ix_cp_sop_sections_search", table_name="cp_sop_sections")
    op.drop_column("cp_sop_sections", "search")
    op.drop_column("cp_sop_sections", "body")
