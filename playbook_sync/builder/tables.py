"""The builder's tables, on the same Base as the run's (so one migration history and one metadata).

Scenarios are rows of their own: each is addressed by id in the API, edited, locked and
regenerated on its own, and counted for the playbook. Their content modules are one JSONB
document per scenario: the modules (lists of lines, objection/response pairs) are always read
and written together with the scenario, have no identity or query of their own, and a
relational split (six child tables) would buy nothing but joins. The same goes for pain
points and competitors, and for the sources kept per module.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from playbook_sync.models import Base, created_now, uuid_pk


class User(Base):
    """A person with an API token; only the token's SHA-256 is stored (tokens are random, 256 bits)."""

    __tablename__ = "cp_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # NULL: the local operator's user
    created_at: Mapped[datetime] = created_now()


class PlaybookRow(Base):
    __tablename__ = "cp_playbooks"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[int] = mapped_column(ForeignKey("cp_users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    target_persona: Mapped[str] = mapped_column(Text, server_default="")
    industry: Mapped[str] = mapped_column(Text, server_default="")
    product_line: Mapped[str] = mapped_column(Text, server_default="")
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    is_template: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    edited: Mapped[list] = mapped_column(JSONB, server_default="[]")
    version: Mapped[int] = mapped_column(Integer, server_default="1")  # the ETag: bumped on every change
    published_path: Mapped[str | None] = mapped_column(Text)
    published_sha: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()

    scenarios: Mapped[list[ScenarioRow]] = relationship(order_by="ScenarioRow.position", cascade="all, delete-orphan",
                                                        passive_deletes=True, back_populates="playbook")

    __table_args__ = (CheckConstraint("status IN ('draft', 'published', 'archived')", name="ck_cp_playbooks_status"),
                      Index("ix_cp_playbooks_status", "status"))


class ScenarioRow(Base):
    __tablename__ = "cp_scenarios"

    id: Mapped[uuid.UUID] = uuid_pk()
    playbook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cp_playbooks.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    deal_stage: Mapped[str] = mapped_column(String(16))
    meeting_context: Mapped[str] = mapped_column(Text, server_default="")
    customer_pain_points: Mapped[list] = mapped_column(JSONB, server_default="[]")
    competitors: Mapped[list] = mapped_column(JSONB, server_default="[]")
    content_modules: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    # Fields a person changed since the last generation: generation leaves them alone unless asked.
    edited: Mapped[list] = mapped_column(JSONB, server_default="[]")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()

    playbook: Mapped[PlaybookRow] = relationship(back_populates="scenarios")


class ModuleSources(Base):
    """The sources one generated module of a scenario drew on (replaced when the module is regenerated)."""

    __tablename__ = "cp_scenario_module_sources"

    scenario_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cp_scenarios.id", ondelete="CASCADE"), primary_key=True)
    module: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    sources: Mapped[list] = mapped_column(JSONB, server_default="[]")
    created_at: Mapped[datetime] = created_now()


class GenerationJob(Base):
    """One generation request: what it was asked, how far it got, what it made, what it cost."""

    __tablename__ = "cp_generation_jobs"

    id: Mapped[uuid.UUID] = uuid_pk()
    kind: Mapped[str] = mapped_column(String(16))  # playbook | scenario
    status: Mapped[str] = mapped_column(String(16), server_default="queued")  # queued | running | succeeded | failed
    progress: Mapped[int] = mapped_column(Integer, server_default="0")  # percent
    message: Mapped[str] = mapped_column(Text, server_default="")
    user_id: Mapped[int] = mapped_column(ForeignKey("cp_users.id", ondelete="CASCADE"), index=True)
    # SET NULL: deleting a playbook while it is being generated ends the job, it does not erase its record.
    playbook_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cp_playbooks.id", ondelete="SET NULL"))
    scenario_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cp_scenarios.id", ondelete="SET NULL"))
    request: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    result: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list] = mapped_column(JSONB, server_default="[]")
    cost_usd: Mapped[float] = mapped_column(Float, server_default="0")
    usage: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()

    __table_args__ = (CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')",
                                      name="ck_cp_generation_jobs_status"),)
