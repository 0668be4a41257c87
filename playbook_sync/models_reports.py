"""Tables of execution reports (issue 13): executions, their reports, and the outcome callouts written.

The names and fields of `playbook_executions` and `playbook_reports` are the ones the systems
that produce reports already use; they are kept as they are (no cp_ prefix) so those systems
can read and write them directly.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import CheckConstraint, Computed, DateTime, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from playbook_sync.models import DIMENSIONS, Base, created_now

REPORT_STATUSES = ("completed", "failed", "in-progress")
REPORT_SEARCH = "to_tsvector('english'::regconfig, COALESCE(body, ''::text))"



class PlaybookExecution(Base):
    """One execution of a playbook for an account."""

    __tablename__ = "playbook_executions"

    execution_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a uuid, as a string
    customer_id: Mapped[str] = mapped_column(Text, index=True)
    account_id: Mapped[str] = mapped_column(Text, index=True)
    playbook_id: Mapped[str] = mapped_column(Text, index=True)
    execution_data: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now(),
                                                 nullable=False)


class PlaybookReport(Base):
    """The report of one execution (one-to-one), its text for search and its embedding."""

    __tablename__ = "playbook_reports"

    report_id: Mapped[str] = mapped_column(Text, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("playbook_executions.execution_id", ondelete="CASCADE"), unique=True)
    customer_id: Mapped[str] = mapped_column(Text, index=True)
    account_id: Mapped[str] = mapped_column(Text, index=True)
    playbook_id: Mapped[str] = mapped_column(Text, index=True)
    playbook_name: Mapped[str | None] = mapped_column(Text)
    account_name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    report_data: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    duration: Mapped[str | None] = mapped_column(Text)
    steps_completed: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    report_generated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now(),
                                                 nullable=False)
    # Executive summary + outcomes + next steps: what is embedded and searched (reports.report_text).
    body: Mapped[str | None] = mapped_column(Text)
    search = mapped_column(TSVECTOR, Computed(REPORT_SEARCH, persisted=True))
    # The embedding cache rule of SOPs: re-embed only when the text (sha256) or the model changes.
    embedding = mapped_column(Vector(DIMENSIONS), nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(Text)
    embedded_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("status IN ('completed', 'failed', 'in-progress')", name="ck_playbook_reports_status"),
        Index("ix_playbook_reports_customer_playbook", "customer_id", "playbook_id"),
        Index("ix_playbook_reports_account_playbook", "account_id", "playbook_id"),
        Index("ix_playbook_reports_search", "search", postgresql_using="gin"),
        Index("ix_playbook_reports_embedding_hnsw", "embedding", postgresql_using="hnsw",
              postgresql_with={"m": 16, "ef_construction": 64}, postgresql_ops={"embedding": "vector_cosine_ops"}),
    )


class OutcomeCallout(Base):
    """The evidence behind each outcome callout planned for an SOP; published once its block is committed
    (cp_inserted_callouts with the same SOP and block hash), which is what 'changed materially' compares to."""

    __tablename__ = "cp_outcome_callouts"

    sop_file_path: Mapped[str] = mapped_column(Text, primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SopEvidence.to_dict(), plus "replaces": the hashes of our earlier aggregates this one replaced (survival.py)
    evidence: Mapped[dict] = mapped_column(JSONB)
    run_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = created_now()
