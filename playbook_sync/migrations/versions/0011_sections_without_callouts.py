"""SOP sections are indexed without our callouts (callouts.without_blocks): every cached SOP is re-embedded

The SOP cache is keyed on (content_hash, embedding model). Section texts and vectors cached before
this revision include the callouts we wrote; marking every cached hash stale makes the next run's
sync re-embed each SOP once (one batched embedding request), while the old rows keep serving search
until then.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

STALE = "stale: indexed with callouts (0011)"  # never a sha256 hex digest, so never equal to a file's hash


def upgrade() -> None:
    op.execute(f"UPDATE cp_sop_embeddings SET content_hash = '{STALE}'")


def downgrade() -> None:
    pass  # the new section texts are as good a cache for the old code: nothing to undo
