"""callout survival, confidence, lessons (issue 14)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "cp_callout_states",
        sa.Column("callout_id", postgresql.UUID(as_uuid=True),
                  sa.ForeignKey("cp_inserted_callouts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sop_file_path", sa.Text(), nullable=False),
        sa.Column("section", sa.Text(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), server_default="pending", nullable=False),
        sa.Column("current_text", sa.Text(), nullable=True),
        sa.Column("current_sop_path", sa.Text(), nullable=True),
        sa.Column("current_section", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("landed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_sha", sa.Text(), nullable=True),
        sa.Column("helpful", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reinforced_by", postgresql.ARRAY(postgresql.UUID(as_uuid=True)), server_default="{}", nullable=False),
        sa.Column("sources", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_cp_callout_states_sop_file_path", "cp_callout_states", ["sop_file_path"])
    op.create_table(
        "cp_lessons",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("sop_file_path", sa.Text(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("strength", sa.Float(), server_default="1", nullable=False),
        sa.Column("confirmations", sa.Integer(), server_default="1", nullable=False),
        sa.Column("contradictions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.UniqueConstraint("sop_file_path", "category", "text_hash", name="uq_cp_lessons_sop_category_text"),
    )
    op.create_index("ix_cp_lessons_sop_category", "cp_lessons", ["sop_file_path", "category"])
    op.create_table(
        "cp_run_learning",
        sa.Column("run_id", postgresql.UUID(as_uuid=True),
                  sa.ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cp_run_learning")
    op.drop_index("ix_cp_lessons_sop_category", table_name="cp_lessons")
    op.drop_table("cp_lessons")
    op.drop_index("ix_cp_callout_states_sop_file_path", table_name="cp_callout_states")
    op.drop_table("cp_callout_states")
