"""playbook builder, users (issue 15)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _now() -> sa.Column:
    return sa.func.now()


def upgrade() -> None:
    jsonb = postgresql.JSONB(astext_type=sa.Text())
    uuid = postgresql.UUID(as_uuid=True)
    op.create_table(
        "cp_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_table(
        "cp_playbooks",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("cp_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("target_persona", sa.Text(), server_default="", nullable=False),
        sa.Column("industry", sa.Text(), server_default="", nullable=False),
        sa.Column("product_line", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(16), server_default="draft", nullable=False),
        sa.Column("is_template", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("edited", jsonb, server_default="[]", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("published_path", sa.Text(), nullable=True),
        sa.Column("published_sha", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("status IN ('draft', 'published', 'archived')", name="ck_cp_playbooks_status"),
    )
    op.create_index("ix_cp_playbooks_user_id", "cp_playbooks", ["user_id"])
    op.create_index("ix_cp_playbooks_status", "cp_playbooks", ["status"])
    op.create_table(
        "cp_scenarios",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("playbook_id", uuid, sa.ForeignKey("cp_playbooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("deal_stage", sa.String(16), nullable=False),
        sa.Column("meeting_context", sa.Text(), server_default="", nullable=False),
        sa.Column("customer_pain_points", jsonb, server_default="[]", nullable=False),
        sa.Column("competitors", jsonb, server_default="[]", nullable=False),
        sa.Column("content_modules", jsonb, server_default="{}", nullable=False),
        sa.Column("edited", jsonb, server_default="[]", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_index("ix_cp_scenarios_playbook_id", "cp_scenarios", ["playbook_id"])
    op.create_table(
        "cp_scenario_module_sources",
        sa.Column("scenario_id", uuid, sa.ForeignKey("cp_scenarios.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("module", sa.String(32), primary_key=True),
        sa.Column("job_id", uuid, nullable=True),
        sa.Column("sources", jsonb, server_default="[]", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_table(
        "cp_generation_jobs",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), server_default="queued", nullable=False),
        sa.Column("progress", sa.Integer(), server_default="0", nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("cp_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("playbook_id", uuid, sa.ForeignKey("cp_playbooks.id", ondelete="SET NULL"), nullable=True),
        sa.Column("scenario_id", uuid, sa.ForeignKey("cp_scenarios.id", ondelete="SET NULL"), nullable=True),
        sa.Column("request", jsonb, server_default="{}", nullable=False),
        sa.Column("result", jsonb, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sources", jsonb, server_default="[]", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("usage", jsonb, server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_cp_generation_jobs_status"),
    )
    op.create_index("ix_cp_generation_jobs_user_id", "cp_generation_jobs", ["user_id"])


def downgrade() -> None:
    op.drop_table("cp_generation_jobs")
    op.drop_table("cp_scenario_module_sources")
    op.drop_table("cp_scenarios")
    op.drop_table("cp_playbooks")
    op.drop_table("cp_users")
