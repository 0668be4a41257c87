"""GET /api/runs, GET /api/runs/{id} (the run report JSON), GET /api/sops/{id}/stats (outcome evidence)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from playbook_sync import lifecycle, outcome_callouts, report, store
from playbook_sync.api.state import SessionDep, SettingsDep, get_caller

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[Depends(get_caller)])


@router.get("/runs")
def get_runs(session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict:
    """The latest runs, newest first."""
    return {"runs": [lifecycle.summary(r) | {"run_at": r.run_at.isoformat(), "trigger": r.trigger,
                                             "finished_at": r.finished_at.isoformat() if r.finished_at else None}
                     for r in store.recent_runs(session, limit=limit)]}


@router.get("/runs/{run_id}")
def get_run(run_id: str, session: SessionDep, settings: SettingsDep) -> dict:
    """A run's report (the JSON of `playbook-sync report`), by id or unique prefix."""
    from playbook_sync.deps import build_repo

    try:
        run = report.find_run(session, run_id)
    except LookupError as exc:
        stored = report.load(settings, run_id) if run_id.strip() else None  # a dry run left only its files
        if stored is None:
            raise HTTPException(404, str(exc)) from None
        return stored
    return report.build(session, settings, build_repo(settings), run)


@router.get("/sops/{sop:path}/stats")
def get_sop_stats(sop: str, session: SessionDep, settings: SettingsDep) -> dict:
    """Outcome evidence of one SOP (frontmatter id or path) over PLAYBOOK_SYNC_EVIDENCE_PERIOD_DAYS."""
    try:
        return outcome_callouts.stats(session, settings, sop)[0]
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
