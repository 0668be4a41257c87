"""sop postings: tf and length in the primary key's index, so BM25 reads its postings by an index-only scan

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cp_sop_postings DROP CONSTRAINT cp_sop_postings_pkey, "
               "ADD CONSTRAINT cp_sop_postings_pkey PRIMARY KEY (word, section_id) INCLUDE (tf, length)")


def downgrade() -> None:
    op.execute("ALTER TABLE cp_sop_postings DROP CONSTRAINT cp_sop_postings_pkey, "
               "ADD CONSTRAINT cp_sop_postings_pkey PRIMARY KEY (word, section_id)")
