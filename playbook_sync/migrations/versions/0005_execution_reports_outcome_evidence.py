"""execution reports, outcome evidence (issue 13)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REPORT_SEARCH = "to_tsvector('english'::regconfig, COALESCE(body, ''::text))"
ENTRY_SEARCH = "to_tsvector('english'::regconfig, ((content || ' '::text) || COALESCE(context, ''::text)))"


def _stamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "playbook_executions",
        sa.Column("execution_id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("playbook_id", sa.Text(), nullable=False),
        sa.Column("execution_data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        *_stamps(),
    )
    for column in ("customer_id", "account_id", "playbook_id"):
        op.create_index(f"ix_playbook_executions_{column}", "playbook_executions", [column])
    op.create_table(
        "playbook_reports",
        sa.Column("report_id", sa.Text(), primary_key=True),
        sa.Column("execution_id", sa.String(36), sa.ForeignKey("playbook_executions.execution_id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("playbook_id", sa.Text(), nullable=False),
        sa.Column("playbook_name", sa.Text(), nullable=True),
        sa.Column("account_name", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("report_data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("duration", sa.Text(), nullable=True),
        sa.Column("steps_completed", sa.Integer(), nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report_generated_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(REPORT_SEARCH, persisted=True), nullable=True),
        sa.Column("embedding", Vector(1536), nullable=True),
        sa.Column("embedding_model", sa.Text(), nullable=True),
        sa.Column("embedded_hash", sa.String(64), nullable=True),
        sa.CheckConstraint("status IN ('completed', 'failed', 'in-progress')", name="ck_playbook_reports_status"),
    )
    for column in ("customer_id", "account_id", "playbook_id"):
        op.create_index(f"ix_playbook_reports_{column}", "playbook_reports", [column])
    op.create_index("ix_playbook_reports_customer_playbook", "playbook_reports", ["customer_id", "playbook_id"])
    op.create_index("ix_playbook_reports_account_playbook", "playbook_reports", ["account_id", "playbook_id"])
    op.create_index("ix_playbook_reports_search", "playbook_reports", ["search"], postgresql_using="gin")
    op.create_index("ix_playbook_reports_embedding_hnsw", "playbook_reports", ["embedding"], postgresql_using="hnsw",
                    postgresql_with={"m": 16, "ef_construction": 64}, postgresql_ops={"embedding": "vector_cosine_ops"})
    op.create_table(
        "cp_outcome_callouts",
        sa.Column("sop_file_path", sa.Text(), primary_key=True),
        sa.Column("block_hash", sa.String(64), primary_key=True),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("run_id", sa.UUID(), sa.ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    # Entries get the lexical side of search as SOP sections have it (0004): generated, so never stale.
    op.add_column("cp_knowledge_entries", sa.Column("search", postgresql.TSVECTOR(),
                                                    sa.Computed(ENTRY_SEARCH, persisted=True), nullable=True))
    op.create_index("ix_cp_knowledge_entries_search", "cp_knowledge_entries", ["search"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_cp_knowledge_entries_search", table_name="cp_knowledge_entries")
    op.drop_column("cp_knowledge_entries", "search")
    op.drop_table("cp_outcome_callouts")
    op.drop_table("playbook_reports")
    op.drop_table("playbook_executions")
