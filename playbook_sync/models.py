"""SQLAlchemy 2.x tables (cp_*). The spec's columns plus what the invariants need."""

from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    ARRAY,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DIMENSIONS = 1536


class Base(DeclarativeBase):
    pass


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class KnowledgeEntry(Base):
    __tablename__ = "cp_knowledge_entries"

    id: Mapped[uuid.UUID] = _pk()
    category: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
    speaker: Mapped[str | None] = mapped_column(Text)
    transcript_type: Mapped[str] = mapped_column(String(32))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    source_ref: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()  # the client's date: display, ordering, changelog
    # When we stored it (server clock): what a run owes is decided by this and by outcomes,
    # never by created_at, which a late export or a clock behind can put in the past.
    received_at: Mapped[datetime] = _now()
    embedding = mapped_column(Vector(DIMENSIONS), nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_cp_knowledge_entries_created_at", "created_at"),
                      Index("ix_cp_knowledge_entries_received_at", "received_at"))


class SopEmbedding(Base):
    """One row per SOP file (the spec's table): whole-file embedding and content hash."""

    __tablename__ = "cp_sop_embeddings"

    id: Mapped[uuid.UUID] = _pk()
    file_path: Mapped[str] = mapped_column(Text, unique=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    embedding = mapped_column(Vector(DIMENSIONS), nullable=True)
    embedding_model: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    sop_id: Mapped[str | None] = mapped_column(Text)
    module: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _now()


class SopSection(Base):
    """One row per H2/H3 section of an SOP: what entries are matched against."""

    __tablename__ = "cp_sop_sections"

    id: Mapped[uuid.UUID] = _pk()
    sop_embedding_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_sop_embeddings.id", ondelete="CASCADE"), index=True
    )
    file_path: Mapped[str] = mapped_column(Text, index=True)
    heading: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    embedding = mapped_column(Vector(DIMENSIONS))

    __table_args__ = (
        Index(
            "ix_cp_sop_sections_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )


class SyncRun(Base):
    __tablename__ = "cp_playbook_sync_runs"

    id: Mapped[uuid.UUID] = _pk()
    run_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[str] = mapped_column(Text, server_default="manual")
    embedding_model: Mapped[str | None] = mapped_column(Text)
    base_sha: Mapped[str | None] = mapped_column(Text)
    entries_processed: Mapped[int] = mapped_column(Integer, server_default="0")
    entries_enriched: Mapped[int] = mapped_column(Integer, server_default="0")
    entries_redundant: Mapped[int] = mapped_column(Integer, server_default="0")
    entries_orphaned: Mapped[int] = mapped_column(Integer, server_default="0")
    entries_deferred: Mapped[int] = mapped_column(Integer, server_default="0")
    entries_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    sops_enriched: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    sops_created: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    commit_sha: Mapped[str | None] = mapped_column(Text)
    commit_message: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="running")
    error_log: Mapped[str | None] = mapped_column(Text)
    score_histogram: Mapped[dict | None] = mapped_column(JSONB)
    # Cost accounting (tokens per step, dollars) and the optional batch / pull request.
    cost_usd: Mapped[float] = mapped_column(Float, server_default="0")
    usage: Mapped[dict | None] = mapped_column(JSONB)
    batch_id: Mapped[str | None] = mapped_column(Text)
    batch_status: Mapped[str | None] = mapped_column(Text)
    pull_request_url: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The run lock: at most one row may be 'running' at any time, enforced by
        # Postgres so two concurrent start_run calls cannot both win.
        Index(
            "uq_cp_playbook_sync_runs_one_running",
            "status",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )


class KnowledgeSopMatch(Base):
    """The spec's match log: one row per (run, entry, SOP); SOP NULL for orphans/failures."""

    __tablename__ = "cp_knowledge_sop_matches"

    id: Mapped[uuid.UUID] = _pk()
    knowledge_entry_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_knowledge_entries.id", ondelete="CASCADE"), index=True
    )
    sop_file_path: Mapped[str | None] = mapped_column(Text)
    section: Mapped[str | None] = mapped_column(Text)
    similarity_score: Mapped[float | None] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))
    rationale: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    edit_summary: Mapped[str | None] = mapped_column(Text)
    sync_run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        UniqueConstraint(
            "sync_run_id",
            "knowledge_entry_id",
            "sop_file_path",
            name="uq_cp_knowledge_sop_matches_run_entry_sop",
            postgresql_nulls_not_distinct=True,
        ),
    )


class RunItem(Base):
    """One entry within one run: its state, attempts and last error."""

    __tablename__ = "cp_sync_run_items"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"), primary_key=True
    )
    entry_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_knowledge_entries.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    best_score: Mapped[float | None] = mapped_column(Float)
    best_sop: Mapped[str | None] = mapped_column(Text)
    prepared: Mapped[dict | None] = mapped_column(JSONB)  # a classify request awaiting a batch
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InsertedCallout(Base):
    """A block written into an SOP; (SOP, entry) pairs here are never written again."""

    __tablename__ = "cp_inserted_callouts"

    id: Mapped[uuid.UUID] = _pk()
    sop_file_path: Mapped[str] = mapped_column(Text)
    section: Mapped[str] = mapped_column(Text)
    entry_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    block_hash: Mapped[str] = mapped_column(String(64))
    block: Mapped[str] = mapped_column(Text)
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"), index=True
    )
    commit_sha: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        UniqueConstraint("sop_file_path", "block_hash", name="uq_cp_inserted_callouts_sop_block"),
        Index("ix_cp_inserted_callouts_entry_ids", "entry_ids", postgresql_using="gin"),
    )


class OrphanCluster(Base):
    """Orphans that agree, kept across runs until promoted to a new SOP."""

    __tablename__ = "cp_orphan_clusters"

    id: Mapped[uuid.UUID] = _pk()
    label: Mapped[str | None] = mapped_column(Text)
    centroid = mapped_column(Vector(DIMENSIONS))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    status: Mapped[str] = mapped_column(String(16), server_default="open")  # open | promoted
    sop_file_path: Mapped[str | None] = mapped_column(Text)
    promoted_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cp_playbook_sync_runs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class OrphanMember(Base):
    """An orphaned entry's membership in a cluster (an entry is in at most one)."""

    __tablename__ = "cp_orphan_members"

    entry_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_knowledge_entries.id", ondelete="CASCADE"), primary_key=True
    )
    cluster_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cp_orphan_clusters.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cp_playbook_sync_runs.id", ondelete="SET NULL")
    )
    similarity: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _now()


class LlmCall(Base):
    """One provider call: tokens and dollars, attributed to a run, an entry and a step."""

    __tablename__ = "cp_llm_calls"

    id: Mapped[uuid.UUID] = _pk()
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cp_playbook_sync_runs.id", ondelete="CASCADE"), index=True
    )
    entry_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    step: Mapped[str] = mapped_column(String(32))  # embed | classify | edit | cluster | new_sop
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cache_read_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[float] = mapped_column(Float, server_default="0")
    batch: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = _now()
