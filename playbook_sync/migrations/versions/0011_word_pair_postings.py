"""word pairs in the BM25 index: forget the postings and lexicon, so the next run rebuilds them with pairs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # lexicon.refresh_lexicon writes postings for every section that has none, and runs when the search
    # statistics are missing (pipeline.py): without them the next run indexes each section's word pairs too.
    # Until then an entry's pairs match nothing and BM25 ranks as before.
    op.execute("DELETE FROM cp_sop_search_stats")
    op.execute("DELETE FROM cp_sop_lexicon")
    op.execute("DELETE FROM cp_sop_postings")


def downgrade() -> None:
    # The older code reads only single lexemes; pair rows would never match one of its query words.
    op.execute("DELETE FROM cp_sop_postings WHERE strpos(word, ' ') > 0")
    op.execute("DELETE FROM cp_sop_lexicon WHERE strpos(word, ' ') > 0")
