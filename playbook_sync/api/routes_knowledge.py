"""POST /api/entries and POST /api/reports: the capture systems' door, with ingest's validation.

A body is one record or a list of them. Every record goes through the same checks as a line of
`ingest` / `ingest-reports` (ingest.py, reports.py); if any is refused, nothing is stored, the
answer is 422 naming each bad record and field, and the refused records are kept in
DATA_DIR/rejected like a file's bad lines. A repeated request stores nothing twice when its records
carry their `id` (entries) or `report_id` (reports); an entry sent without an id is a new entry each
time, as a line of `ingest` is (a retrying client sends ids).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException

from playbook_sync import ingest, reports
from playbook_sync.api.state import SessionDep, SettingsDep, get_caller

router = APIRouter(prefix="/api", tags=["knowledge"], dependencies=[Depends(get_caller)])
_ENTRY = {"category": "insight", "content": "Naming the prospect's competitor in the subject line doubled opens.",
          "transcript_type": "coaching", "speaker": "Dana Whitfield", "tags": ["cold-email"], "created_at": "2026-11-15T15:00:00Z"}
_REPORT = {"report_id": "rpt-42", "customer_id": "cust-acme", "account_id": "acct-acme-us", "playbook_id": "voc-sprint",
           "playbook_name": "VoC Sprint", "account_name": "Acme US", "status": "completed", "steps_completed": 5,
           "total_steps": 5, "completed_at": "2026-11-20T17:00:00Z",
           "report_data": {"executive_summary": "Closed the loop on every detractor within 48 hours.",
                           "outcomes_achieved": [{"metric": "NPS", "before": 25, "after": 40}], "next_steps": ["Quarterly survey"]}}
Entries = Annotated[list[dict[str, Any]] | dict[str, Any], Body(
    description="one entry, or a list (the JSONL line format of `ingest`)",
    openapi_examples={"one": {"value": _ENTRY}, "several": {"value": [_ENTRY, _ENTRY | {"category": "question"}]}})]
Reports = Annotated[list[dict[str, Any]] | dict[str, Any], Body(
    description="one execution report, or a list (the JSONL line format of `ingest-reports`)",
    openapi_examples={"one": {"value": _REPORT}})]
MAX_RECORDS = 1000


def _lines(payload) -> list[bytes]:
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise HTTPException(422, [{"loc": ["body"], "field": None, "msg": "no records"}])
    if len(items) > MAX_RECORDS:
        raise HTTPException(413, f"at most {MAX_RECORDS} records per request, got {len(items)}")
    # ASCII escapes: a lone surrogate (valid JSON, not valid UTF-8) reaches ingest's own check, which names its field.
    return [json.dumps(item).encode("ascii") for item in items]


def _refuse(parsed: ingest.Parsed, settings, source: str) -> None:
    """422 with each refused record's index, field and reason; the records are kept for the operator."""
    ingest.write_rejects(parsed, settings.data_dir / "rejected", source)
    detail = []
    for (number, _), error in zip(parsed.rejected, parsed.errors, strict=True):
        reason = error.split(": ", 1)[1] if ": " in error else error
        field = reason.split(":", 1)[0] if ":" in reason else None
        detail.append({"loc": ["body", number - 1] + ([field] if field else []), "field": field, "msg": reason})
    raise HTTPException(422, detail)


@router.post("/entries")
def post_entries(payload: Entries, session: SessionDep, settings: SettingsDep) -> dict:
    """Store knowledge entries (the JSONL format of `ingest`); an id already stored keeps its stored entry.
    Send each entry's `id` to retry safely: one without an id is stored anew each time."""
    lines = _lines(payload)
    checked = ingest.Parsed()
    list(ingest.iter_entries(lines, "api", checked))
    if checked.errors:
        _refuse(checked, settings, "api-entries")
    loaded = ingest.load(session, lines, "api")
    return {"added": loaded.added, "present": loaded.present, "warnings": loaded.parsed.warnings}


@router.post("/reports")
def post_reports(payload: Reports, session: SessionDep, settings: SettingsDep) -> dict:
    """Store execution reports (the JSONL format of `ingest-reports`); a report_id already stored is updated."""
    from playbook_sync.deps import build_embedder

    lines = _lines(payload)
    out = reports.Stored()
    good = list(reports.iter_reports(lines, "api", out.parsed))
    if out.parsed.errors:
        _refuse(out.parsed, settings, "api-reports")
    reports.store_reports(session, build_embedder(settings), good, "api", out)
    if out.parsed.errors:  # the database refused one (e.g. its execution has another report)
        session.rollback()
        _refuse(out.parsed, settings, "api-reports")
    return {"added": out.added, "updated": out.updated, "kept": out.kept, "report_ids": out.report_ids,
            "warnings": out.parsed.warnings}
