"""Pydantic payloads passed between the pipeline, providers and tasks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Category(StrEnum):
    insight = "insight"
    question = "question"
    product_intel = "product_intel"
    outcome = "outcome"


class TranscriptType(StrEnum):
    coaching = "coaching"
    sales = "sales"
    report = "report"


class Action(StrEnum):
    """Per-candidate classifier answer, plus the match-level outcomes we record."""

    enrich = "enrich"
    redundant = "redundant"
    tangential = "tangential"
    orphaned = "orphaned"
    deferred = "deferred"
    failed = "failed"
    held = "held"  # below the (SOP, category) confidence floor: not written, listed for review (learning.py)


class ItemStatus(StrEnum):
    """State of one entry within one run; every entry ends in a final one."""

    pending = "pending"
    matched = "matched"  # classified with >=1 enrich; finalize decides enriched|deferred
    enriched = "enriched"
    redundant = "redundant"
    orphaned = "orphaned"
    deferred = "deferred"
    failed = "failed"
    held = "held"  # not written for low confidence; final, listed for review (learning.py)


FINAL_ITEM_STATUSES = {ItemStatus.enriched, ItemStatus.redundant, ItemStatus.orphaned, ItemStatus.held}


class RunStatus(StrEnum):
    running = "running"
    success = "success"
    partial = "partial"
    failed = "failed"


# A day inside Python's datetime range: a stored value must read back in any time zone.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


class EntryIn(BaseModel):
    """A knowledge entry as ingested (one JSONL line)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: uuid.UUID | None = None
    category: Category
    content: str = Field(max_length=20_000)
    context: str | None = Field(default=None, max_length=20_000)
    speaker: str | None = Field(default=None, max_length=200)
    transcript_type: TranscriptType
    tags: list[str] = Field(default_factory=list, max_length=50)
    source_ref: str | None = Field(default=None, max_length=500)
    created_at: datetime | None = None

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content is empty")
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Naive dates are UTC; every date is stored as UTC. One that cannot be (0001-01-01T00:00+14:00
        is in year 0) or that a reader in another time zone could not represent is refused here,
        not by a later command that reads it back."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"date {value.isoformat()} is outside the years 1-9999 in UTC") from None
        if not (_EARLIEST <= utc <= _LATEST):
            raise ValueError(f"date {value.isoformat()} is too close to the years 1-9999 limit to be stored safely")
        return utc


class Entry(BaseModel):
    """A stored entry as the providers see it."""

    id: uuid.UUID
    category: Category
    content: str
    context: str | None = None
    speaker: str | None = None
    transcript_type: TranscriptType
    tags: list[str] = Field(default_factory=list)
    source_ref: str | None = None
    created_at: datetime | None = None  # when it was said: callouts name it (provenance)


class Section(BaseModel):
    """An H2/H3 chunk of an SOP (or the preamble, heading "")."""

    heading: str
    level: int  # 0 for the preamble, 2 or 3
    start_line: int  # 0-based index of the heading line (or 0)
    end_line: int  # exclusive
    text: str


class SopDoc(BaseModel):
    """A parsed SOP file."""

    path: str
    sop_id: str
    title: str
    module: str | None
    content: str
    content_hash: str
    sections: list[Section]
    home_page: bool = False  # frontmatter `slug: /`: the site's landing page, not a procedure


class Candidate(BaseModel):
    """An SOP that matched an entry, with its best section."""

    sop_path: str
    title: str
    section: str
    similarity: float
    band: str  # strong | weak | low (under weak, shown because the entry's best candidate is worth asking about)
    sop_text: str = ""
    lessons: list[str] = Field(default_factory=list)  # what editors taught about this SOP (lessons.py)
    # The SOP's best-matching sections for this entry (fused order, the best first): what a
    # model is shown of the SOP, with its outline, instead of the whole file (excerpts.py).
    sections: list[str] = Field(default_factory=list)


class ClassifyRequest(BaseModel):
    entry: Entry
    candidates: list[Candidate]


class Decision(BaseModel):
    """The classifier's answer for one candidate SOP."""

    sop_path: str
    action: Action
    section: str | None = None
    rationale: str = ""
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("action")
    @classmethod
    def _classifier_action(cls, value: Action) -> Action:
        if value not in (Action.enrich, Action.redundant, Action.tangential):
            raise ValueError(f"classifier action must be enrich|redundant|tangential, got {value}")
        return value


class CalloutKind(StrEnum):
    field_tip = "field_tip"  # insight
    question = "question"
    info = "info"  # product_intel
    results = "results"  # outcome


class CalloutRequest(BaseModel):
    """Entries (same SOP, section and kind) to be merged into one callout."""

    sop_path: str
    sop_title: str
    section: str
    kind: CalloutKind
    entries: list[Entry]
    section_text: str = ""
    sop_text: str = ""  # the whole SOP, so a model can copy an anchor line from it
    feedback: str | None = None  # why the previous answer was refused (asked again once)
    lessons: list[str] = Field(default_factory=list)  # what editors taught about this SOP (lessons.py)


class BlockAsk(BaseModel):
    """One callout block of an SOP edit: the section it goes in, its kind, the entries it merges."""

    key: str  # names the block in the model's answer ("b1", "b2", ...)
    section: str
    kind: CalloutKind
    entries: list[Entry]


class SopEditRequest(BaseModel):
    """Every block one SOP gets in a run, written by one edit call (sop_edits.py)."""

    sop_path: str
    sop_title: str
    blocks: list[BlockAsk]
    outline: str = ""  # the SOP's headings
    excerpts: str = ""  # the target sections and their neighbours, lines as in the SOP
    feedback: str | None = None  # why the previous answer was refused (asked again once)
    lessons: list[str] = Field(default_factory=list)  # what editors taught about this SOP (lessons.py)


class CalloutDraft(BaseModel):
    """1-3 sentences of callout body; rendering adds the admonition."""

    body: str
    # An insertion plan from a real model: a line copied from the SOP, the admonition type
    # and title it used. None from the offline provider (it places by section rules only).
    anchor: str | None = None
    callout_type: str | None = None
    title: str | None = None


class SopDraft(BaseModel):
    """A structured new-SOP draft; our template renders it."""

    title: str = Field(min_length=3, max_length=120)
    overview: str
    steps: list[str] = Field(min_length=1)
    key_lessons: list[str] = Field(min_length=1)


class NewSopRequest(BaseModel):
    module: str
    cluster_label: str
    entries: list[Entry]
