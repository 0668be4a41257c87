"""Execution reports: validate (pydantic), store (upsert by report_id, never a duplicate), embed.

The same standard as knowledge entries (ingest.py, whose line reading and cleaning this
reuses): every bad record is rejected with a precise reason and kept; good ones are stored.
Re-ingesting a report updates it, unless the stored copy was generated later (a late,
older copy never overwrites a newer one; the operator is told).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from playbook_sync.evidence import parse_outcomes
from playbook_sync.ingest import Parsed, clean, json_objects, validation_reasons
from playbook_sync.models_reports import PlaybookExecution, PlaybookReport
from playbook_sync.providers.base import Embedder
from playbook_sync.schemas import EntryIn

# execution_id when a report has none: stable per report_id, so re-ingesting stays one execution.
EXECUTION_NAMESPACE = uuid.UUID("6f1c2a8e-3b1d-5c7e-9a40-13a5e7c0b013")
MAX_TEXT = 20_000


def _utc(value: datetime | None) -> datetime | None:
    return EntryIn._utc(value)  # the entries' date rule: naive is UTC, stored as UTC, in range


class ReportIn(BaseModel):
    """One execution report as ingested (a JSONL line or an item of POST /api/reports)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    report_id: str = Field(min_length=1, max_length=200)
    execution_id: uuid.UUID | None = None
    customer_id: str = Field(min_length=1, max_length=200)
    account_id: str = Field(min_length=1, max_length=200)
    playbook_id: str = Field(min_length=1, max_length=200)
    playbook_name: str | None = Field(default=None, max_length=500)
    account_name: str | None = Field(default=None, max_length=500)
    status: Literal["completed", "failed", "in-progress"]
    report_data: dict[str, Any] = Field(default_factory=dict)
    execution_data: dict[str, Any] = Field(default_factory=dict)
    duration: str | int | float | None = None
    steps_completed: int | None = Field(default=None, ge=0, le=100_000)
    total_steps: int | None = Field(default=None, ge=0, le=100_000)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    report_generated_at: datetime | None = None

    @field_validator("started_at", "completed_at", "report_generated_at")
    @classmethod
    def _dates(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @field_validator("report_data")
    @classmethod
    def _known_fields(cls, value: dict) -> dict:
        summary = value.get("executive_summary")
        if summary is not None and not isinstance(summary, str):
            raise ValueError("executive_summary must be a string")
        for key in ("outcomes_achieved", "next_steps", "exit_criteria", "improvements"):
            if value.get(key) is not None and not isinstance(value[key], list | str | dict):
                raise ValueError(f"{key} must be a list, an object or a string")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ReportIn:
        if None not in (self.steps_completed, self.total_steps) and self.steps_completed > self.total_steps:
            raise ValueError(f"steps_completed ({self.steps_completed}) is more than total_steps ({self.total_steps})")
        if None not in (self.started_at, self.completed_at) and self.completed_at < self.started_at:
            raise ValueError("completed_at is before started_at")
        return self

    @property
    def execution(self) -> str:
        return str(self.execution_id or uuid.uuid5(EXECUTION_NAMESPACE, self.report_id))


def _clean_deep(value, path: str = "") -> tuple[Any, str | None]:
    """Every string cleaned like an entry's text; the path of one that cannot be stored, if any."""
    if isinstance(value, str):
        text = clean(value)
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            return text, f"{path or 'value'}: unpaired UTF-16 surrogate (not valid Unicode)"
        return text, None
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            cleaned, bad = _clean_deep(v, f"{path}.{i}")
            if bad:
                return value, bad
            out.append(cleaned)
        return out, None
    if isinstance(value, dict):
        out_d = {}
        for k, v in value.items():
            cleaned, bad = _clean_deep(v, f"{path}.{k}" if path else str(k))
            if bad:
                return value, bad
            out_d[clean(str(k))] = cleaned
        return out_d, None
    return value, None


def validate_report(obj: dict) -> ReportIn | str:
    """A report, or the precise reason it is refused (field: message)."""
    obj = {k: v for k, v in obj.items() if v is not None}
    try:
        cleaned, bad = _clean_deep(obj)
    except RecursionError:
        return "report_data: nested too deeply"
    if bad:
        return bad
    try:
        return ReportIn.model_validate(cleaned)
    except ValidationError as exc:
        return validation_reasons(exc, "report").replace("Value error, ", "")


def iter_reports(lines: Iterable[bytes], source: str, out: Parsed) -> Iterator[tuple[int, bytes, ReportIn]]:
    """Validate each JSONL line; yield the good reports, record the rest (and repeats) in out."""
    first: dict[str, int] = {}
    for number, raw, obj in json_objects(lines, source, out):
        report = validate_report(obj)
        if isinstance(report, str):
            out.reject(source, number, raw, report)
            continue
        if report.report_id in first:
            out.warn(source, number, f"report_id {report.report_id} also at line {first[report.report_id]}; "
                                     "the later line updates it")
        first[report.report_id] = number
        yield number, raw, report


# -- text ------------------------------------------------------------------------------------


def _as_lines(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{k}: {', '.join(_as_lines(v))}" for k, v in value.items()]
    if isinstance(value, list):
        return [line for v in value for line in _as_lines(v)]
    return [str(value)]


def outcome_lines(report_data: Mapping) -> list[str]:
    """The outcomes as text: parsed changes as `NPS 25 → 40`, anything else as written."""
    parsed = parse_outcomes(report_data)
    if parsed:
        return [f"{o.metric} {o.before:g}{o.unit or ''} → {o.after:g}{o.unit or ''}" for o in parsed]
    return _as_lines(report_data.get("outcomes_achieved"))


def report_text(r: ReportIn | PlaybookReport) -> str:
    """What is searched and embedded for a report: title, executive summary, outcomes, next steps."""
    data = r.report_data or {}
    title = " for ".join(x for x in (r.playbook_name or r.playbook_id, r.account_name or r.account_id) if x)
    parts = [title, data.get("executive_summary") or ""]
    if outcomes := outcome_lines(data):
        parts.append("Outcomes: " + "; ".join(outcomes))
    if steps := _as_lines(data.get("next_steps")):
        parts.append("Next steps: " + "; ".join(steps))
    return "\n".join(p for p in parts if p)[:MAX_TEXT]


# -- store ------------------------------------------------------------------------------------

_REPORT_FIELDS = ("customer_id", "account_id", "playbook_id", "playbook_name", "account_name", "status", "report_data",
                  "duration", "steps_completed", "total_steps", "started_at", "completed_at", "report_generated_at")


@dataclass
class Stored:
    """What one ingest did: reports new, updated, kept (a later copy was stored), and the parse record."""

    parsed: Parsed = field(default_factory=Parsed)
    added: int = 0
    updated: int = 0
    kept: int = 0
    report_ids: list[str] = field(default_factory=list)


def _execution_owner(session: Session, report: ReportIn) -> str | None:
    """Another report already holding this report's execution (one report per execution)."""
    return session.scalar(select(PlaybookReport.report_id).where(
        PlaybookReport.execution_id == report.execution, PlaybookReport.report_id != report.report_id))


def upsert(session: Session, report: ReportIn) -> str:
    """Insert or update one report (and its execution): 'added' | 'updated' | 'kept' (stored copy is newer)."""
    execution = {"customer_id": report.customer_id, "account_id": report.account_id, "playbook_id": report.playbook_id,
                 "execution_data": report.execution_data}
    made = session.scalar(insert(PlaybookExecution).values(execution_id=report.execution, **execution)
                          .on_conflict_do_nothing(index_elements=["execution_id"]).returning(PlaybookExecution.execution_id))
    values = {k: getattr(report, k) for k in _REPORT_FIELDS} | {"duration": None if report.duration is None else str(report.duration)}
    before = session.scalar(select(PlaybookReport.execution_id).where(PlaybookReport.report_id == report.report_id))
    stmt = insert(PlaybookReport).values(report_id=report.report_id, execution_id=report.execution, body=report_text(report),
                                         **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["report_id"],
        set_={**{k: stmt.excluded[k] for k in (*_REPORT_FIELDS, "execution_id", "body")}, "updated_at": func.now(),
              # A copy without a date keeps the stored one: else the next, older copy would find nothing to lose to.
              "report_generated_at": func.coalesce(stmt.excluded.report_generated_at, PlaybookReport.report_generated_at)},
        # A late copy generated before the stored one never overwrites it.
        where=or_(PlaybookReport.report_generated_at.is_(None), stmt.excluded.report_generated_at.is_(None),
                  stmt.excluded.report_generated_at >= PlaybookReport.report_generated_at),
    ).returning(PlaybookReport.report_id)
    done = session.scalar(stmt)
    if done is None:  # a late copy: neither the report nor its execution changes (not even the one made above)
        _drop_unreported(session, made)
        return "kept"
    session.execute(update(PlaybookExecution).where(PlaybookExecution.execution_id == report.execution)
                    .values(**execution, updated_at=func.now()))
    if before != report.execution:
        _drop_unreported(session, before)  # the report moved to another execution: the old one is nobody's
    return "updated" if before else "added"


def _drop_unreported(session: Session, execution_id: str | None) -> None:
    """Delete an execution no report belongs to (each execution row exists for its one report)."""
    if execution_id is not None:
        session.execute(delete(PlaybookExecution).where(
            PlaybookExecution.execution_id == execution_id,
            ~select(PlaybookReport.report_id).where(PlaybookReport.execution_id == execution_id).exists()))


def store_reports(session: Session, embedder: Embedder | None, numbered: Sequence[tuple[int, bytes, ReportIn]],
                  source: str, out: Stored) -> Stored:
    """Upsert each report in its own savepoint (a refused row is rejected, the rest stored), then embed."""
    from sqlalchemy.exc import DBAPIError

    for number, raw, report in numbered:
        if owner := _execution_owner(session, report):
            # "field: reason", as every other reason: the API names the field (it said field: null).
            out.parsed.reject(source, number, raw, f"execution_id: {report.execution} already has report {owner}")
            continue
        try:
            with session.begin_nested():
                outcome = upsert(session, report)
        except DBAPIError as exc:
            out.parsed.reject(source, number, raw, f"the database refused it: {str(exc.orig).strip().splitlines()[0]}")
            continue
        if outcome == "kept":
            out.parsed.warn(source, number, f"report {report.report_id} is already stored from a later "
                                            "report_generated_at; the stored copy is kept")
        setattr(out, outcome, getattr(out, outcome) + 1)
        out.report_ids.append(report.report_id)
    if embedder is not None:
        embed_reports(session, embedder, out.report_ids)
    return out


def load(session: Session, embedder: Embedder | None, lines: Iterable[bytes], source: str) -> Stored:
    """Parse JSONL lines and store the good reports, in the caller's transaction."""
    out = Stored()
    return store_reports(session, embedder, list(iter_reports(lines, source, out.parsed)), source, out)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EMBED_CHUNK = 256  # reports embedded and flushed at a time


def embed_reports(session: Session, embedder: Embedder, report_ids: Sequence[str] | None = None) -> int:
    """Embed reports whose text or model changed since their vector was made (None: every report); how many."""
    from playbook_sync.providers.chunking import embed_all

    stmt = select(PlaybookReport).where(or_(PlaybookReport.embedding.is_(None),
                                            PlaybookReport.embedding_model.is_distinct_from(embedder.model),
                                            PlaybookReport.embedded_hash.is_distinct_from(func.encode(
                                                func.sha256(func.convert_to(PlaybookReport.body, "UTF8")), "hex"))))
    if report_ids is not None:
        if not report_ids:
            return 0
        stmt = stmt.where(PlaybookReport.report_id.in_(list(report_ids)))
    rows = list(session.scalars(stmt.order_by(PlaybookReport.report_id)))
    # In chunks, each flushed and its vectors let go: a 20k-report file held every vector as Python
    # floats at once (1.6 GB resident); the transaction is still the caller's.
    for start in range(0, len(rows), EMBED_CHUNK):
        chunk = rows[start:start + EMBED_CHUNK]
        for row, vector in zip(chunk, embed_all(embedder, [r.body or "" for r in chunk]), strict=True):
            row.embedding, row.embedding_model, row.embedded_hash = vector, embedder.model, text_hash(row.body or "")
        session.flush()
        for row in chunk:
            session.expire(row, ["embedding"])
    return len(rows)
