"""costs, batches, pull requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RUN_COLUMNS = [
    sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
    sa.Column("usage", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column("batch_id", sa.Text(), nullable=True),
    sa.Column("batch_status", sa.Text(), nullable=True),
    sa.Column("pull_request_url", sa.Text(), nullable=True),
]


def upgrade() -> None:
    for column in RUN_COLUMNS:
        op.add_column("cp_playbook_sync_runs", column)
    op.add_column("cp_sync_run_items", sa.Column("prepared", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        "cp_llm_calls",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("entry_id", sa.UUID(), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("batch", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["cp_playbook_sync_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_cp_llm_calls_run_id"), "cp_llm_calls", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cp_llm_calls_run_id"), table_name="cp_llm_calls")
    op.drop_table("cp_llm_calls")
    op.drop_column("cp_sync_run_items", "prepared")
    for column in reversed(RUN_COLUMNS):
        op.drop_column("cp_playbook_sync_runs", column.name)
