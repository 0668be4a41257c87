"""GET routes over the learning loop (issue 14): what each SOP's editors keep, and a run's metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from playbook_sync import learning_metrics
from playbook_sync.api.state import SessionDep, get_caller
from playbook_sync.report import find_run

router = APIRouter(prefix="/api/learning", tags=["learning"], dependencies=[Depends(get_caller)])


@router.get("/sops")
def sops(session: SessionDep) -> dict:
    """Per SOP: confidence per category and per section, callout states, strongest callouts, lessons."""
    return learning_metrics.overview(session)


@router.get("/runs/{run_id}")
def run(run_id: str, session: SessionDep) -> dict:
    """A run's learning metrics (acceptance, edit and decline rates, freshness lag), with the trend."""
    try:
        found = find_run(session, run_id)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return learning_metrics.section(session, found) or {}
