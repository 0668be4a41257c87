"""entries: received_at (when we stored it, by the server's clock)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Which entries a run owes is decided by what was received and what still has no final
outcome, never by the client's created_at (a back-dated entry was skipped for good).
Existing rows get their created_at as received time (capped at now): the best guess we
have, and it keeps `enqueue run` windows of older runs meaning what they meant.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cp_knowledge_entries", sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE cp_knowledge_entries SET received_at = LEAST(created_at, now())")
    op.alter_column("cp_knowledge_entries", "received_at", nullable=False, server_default=sa.text("now()"))
    op.create_index("ix_cp_knowledge_entries_received_at", "cp_knowledge_entries", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cp_knowledge_entries_received_at", table_name="cp_knowledge_entries")
    op.drop_column("cp_knowledge_entries", "received_at")
