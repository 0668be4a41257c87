"""Tables of the learning loop (issue 14): what became of each callout, lessons, per-run metrics.

Kept apart from models.py (same Base) so the shared module stays small; migrations/env.py
imports this module so autogenerate and the schema test see these tables.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from playbook_sync.models import Base, created_now, uuid_pk


class CalloutState(Base):
    """One tracked callout's fate, as last seen on the branch head (survival.py)."""

    __tablename__ = "cp_callout_states"

    callout_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_inserted_callouts.id", ondelete="CASCADE"), primary_key=True
    )
    sop_file_path: Mapped[str] = mapped_column(Text, index=True)  # where it was written (the origin)
    section: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    # pending | kept | edited | moved | declined | sop_deleted | replaced (survival.State)
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    current_text: Mapped[str | None] = mapped_column(Text)  # the block as a person left it (edited/moved)
    current_sop_path: Mapped[str | None] = mapped_column(Text)
    current_section: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when it took this state
    landed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # first seen on the default branch
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_sha: Mapped[str | None] = mapped_column(Text)
    # Reinforcement: redundant entries that repeated it (each counted once), their distinct sources.
    helpful: Mapped[int] = mapped_column(Integer, server_default="0")
    reinforced_by: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), server_default="{}")
    sources: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Lesson(Base):
    """A short lesson about one SOP and entry category, learned from what editors did (lessons.py)."""

    __tablename__ = "cp_lessons"

    id: Mapped[uuid.UUID] = uuid_pk()
    sop_file_path: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # declined | edited: what it was learned from
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    strength: Mapped[float] = mapped_column(Float, server_default="1")
    confirmations: Mapped[int] = mapped_column(Integer, server_default="1")  # Beta-Binomial "kept"
    contradictions: Mapped[int] = mapped_column(Integer, server_default="0")  # and "declined"
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()

    __table_args__ = (
        UniqueConstraint("sop_file_path", "category", "text_hash", name="uq_cp_lessons_sop_category_text"),
        Index("ix_cp_lessons_sop_category", "sop_file_path", "category"),
    )


class RunLearning(Base):
    """Per-run learning metrics (acceptance, edit, decline rates, freshness lag) and confidences."""

    __tablename__ = "cp_run_learning"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"), primary_key=True
    )
    metrics: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
