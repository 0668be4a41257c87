"""The Playbook Builder's JSON routes: playbooks, scenarios, generation jobs, export and publish.

Thin: each route validates (pydantic), calls one service function and shapes the answer.
NotFound → 404 (also for what the caller may not see), Conflict → 409 with the current ETag.
A job is committed before its task is sent, so the worker always finds it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from sqlalchemy.orm import Session

from playbook_sync.api.state import Caller, CallerDep, SessionDep, SettingsDep, get_caller
from playbook_sync.builder import generation, publishing, render, service
from playbook_sync.builder.models import (
    GenerateRequest,
    JobView,
    Playbook,
    PlaybookIn,
    PlaybookStatus,
    PlaybookUpdate,
    Scenario,
    ScenarioGenerateRequest,
    ScenarioIn,
    ScenarioUpdate,
)
from playbook_sync.builder.users import local_user_id
from playbook_sync.config import Settings
from playbook_sync.db import session_scope

router = APIRouter(prefix="/api", tags=["playbook builder"], dependencies=[Depends(get_caller)])
IfMatch = Annotated[str | None, Header(alias="If-Match")]


def user_id_of(session: Session, caller: Caller) -> int:
    """The caller's user; the operator acts as the local user (see builder/users.py)."""
    return caller.user_id if caller.user_id is not None else local_user_id(session)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except service.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except service.Conflict as exc:
        raise HTTPException(409, str(exc), headers={"ETag": exc.current}) from None


def _playbook(session: Session, user: int, playbook_id: uuid.UUID, response: Response) -> Playbook:
    view, tag = _call(service.get_playbook, session, user, playbook_id)
    response.headers["ETag"] = tag
    return view


@router.get("/playbooks", response_model=list[Playbook])
def list_playbooks(session: SessionDep, caller: CallerDep, status: PlaybookStatus | None = None,
                   industry: str | None = None, persona: str | None = None, template: bool | None = None,
                   text: Annotated[str | None, Query(max_length=200)] = None) -> list[Playbook]:
    """Your playbooks and the published ones and templates of others, filtered."""
    return service.list_playbooks(session, user_id_of(session, caller), status=status, industry=industry,
                                  persona=persona, template=template, text=text)


@router.post("/playbooks", response_model=Playbook, status_code=201)
def create_playbook(body: PlaybookIn, session: SessionDep, caller: CallerDep, response: Response) -> Playbook:
    user = user_id_of(session, caller)
    row = service.create_playbook(session, user, body)
    return _playbook(session, user, row.id, response)


@router.get("/playbooks/{playbook_id}", response_model=Playbook)
def get_playbook(playbook_id: uuid.UUID, session: SessionDep, caller: CallerDep, response: Response) -> Playbook:
    return _playbook(session, user_id_of(session, caller), playbook_id, response)


@router.put("/playbooks/{playbook_id}", response_model=Playbook)
def update_playbook(playbook_id: uuid.UUID, body: PlaybookUpdate, session: SessionDep, caller: CallerDep,
                    response: Response, if_match: IfMatch = None) -> Playbook:
    """Change the fields sent; a stale If-Match or updated_at is 409 and changes nothing."""
    user = user_id_of(session, caller)
    _call(service.update_playbook, session, user, playbook_id, body, if_match)
    return _playbook(session, user, playbook_id, response)


@router.delete("/playbooks/{playbook_id}", status_code=204)
def delete_playbook(playbook_id: uuid.UUID, session: SessionDep, caller: CallerDep) -> Response:
    _call(service.delete_playbook, session, user_id_of(session, caller), playbook_id)
    return Response(status_code=204)


@router.post("/playbooks/{playbook_id}/scenarios", response_model=Scenario, status_code=201)
def add_scenario(playbook_id: uuid.UUID, body: ScenarioIn, session: SessionDep, caller: CallerDep,
                 response: Response) -> Scenario:
    row = _call(service.add_scenario, session, user_id_of(session, caller), playbook_id, body)
    response.headers["ETag"] = service.etag(row)
    return service.scenario_view(row)


@router.put("/playbooks/{playbook_id}/scenarios/{scenario_id}", response_model=Scenario)
def update_scenario(playbook_id: uuid.UUID, scenario_id: uuid.UUID, body: ScenarioUpdate, session: SessionDep,
                    caller: CallerDep, response: Response, if_match: IfMatch = None) -> Scenario:
    row = _call(service.update_scenario, session, user_id_of(session, caller), playbook_id, scenario_id, body, if_match)
    response.headers["ETag"] = service.etag(row)
    return service.scenario_view(row, service.sources_of(session, row.id))


@router.delete("/playbooks/{playbook_id}/scenarios/{scenario_id}", status_code=204)
def delete_scenario(playbook_id: uuid.UUID, scenario_id: uuid.UUID, session: SessionDep, caller: CallerDep) -> Response:
    _call(service.delete_scenario, session, user_id_of(session, caller), playbook_id, scenario_id)
    return Response(status_code=204)


# -- generation ---------------------------------------------------------------------------


def enqueue(session: Session, settings: Settings, job) -> JobView:
    """Commit the job, then send its task; a broker that refuses it fails the job (and the request: 503)."""
    view = JobView.model_validate(job)
    session.commit()
    from playbook_sync.worker.builder_tasks import generate

    try:
        generate.delay(str(view.id))
    except Exception as exc:  # the broker is down: say so, and leave no job 'queued' forever
        with session_scope(settings.database_url) as other:
            generation.get_job(other, job.user_id, view.id).status = "failed"
        raise HTTPException(503, f"the task queue is not reachable ({type(exc).__name__}); try again") from None
    return view


@router.post("/playbooks/generate", response_model=JobView, status_code=202)
def generate_playbook(body: GenerateRequest, session: SessionDep, settings: SettingsDep, caller: CallerDep) -> JobView:
    """A new draft playbook filled by a generation job: 3-6 scenarios with their content modules."""
    return enqueue(session, settings, generation.start_playbook_job(session, user_id_of(session, caller), body))


@router.post("/playbooks/{playbook_id}/scenarios/generate", response_model=JobView, status_code=202)
def add_and_generate_scenario(playbook_id: uuid.UUID, body: ScenarioIn, session: SessionDep, settings: SettingsDep,
                              caller: CallerDep) -> JobView:
    """Add a scenario from its details and generate its content modules (what it already holds is kept)."""
    user = user_id_of(session, caller)
    row = _call(service.add_scenario, session, user, playbook_id, body)
    return enqueue(session, settings, generation.start_scenario_job(session, user, playbook_id, row.id,
                                                                     ScenarioGenerateRequest()))


@router.post("/playbooks/{playbook_id}/scenarios/{scenario_id}/generate", response_model=JobView, status_code=202)
def generate_scenario(playbook_id: uuid.UUID, scenario_id: uuid.UUID, session: SessionDep, settings: SettingsDep,
                      caller: CallerDep, body: ScenarioGenerateRequest | None = None) -> JobView:
    """(Re)generate a scenario's content modules, or only those named; edited modules only with overwrite."""
    job = _call(generation.start_scenario_job, session, user_id_of(session, caller), playbook_id, scenario_id,
                body or ScenarioGenerateRequest())
    return enqueue(session, settings, job)


@router.get("/jobs/{job_id}", response_model=JobView)
def get_job(job_id: uuid.UUID, session: SessionDep, caller: CallerDep) -> JobView:
    """A job's status, progress (percent), result or error, sources and cost."""
    return JobView.model_validate(_call(generation.get_job, session, user_id_of(session, caller), job_id))


# -- export and publish ---------------------------------------------------------------------


@router.get("/playbooks/{playbook_id}/export.md")
def export_markdown(playbook_id: uuid.UUID, session: SessionDep, caller: CallerDep) -> Response:
    view, _ = _call(service.get_playbook, session, user_id_of(session, caller), playbook_id)
    return Response(render.markdown(view), media_type="text/markdown; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{render.filename(view)}.md"'})


@router.get("/playbooks/{playbook_id}/export.pdf")
def export_pdf(playbook_id: uuid.UUID, session: SessionDep, caller: CallerDep) -> Response:
    view, _ = _call(service.get_playbook, session, user_id_of(session, caller), playbook_id)
    try:
        pdf = render.pdf(view)
    except render.RendererMissing as exc:
        raise HTTPException(503, str(exc)) from None
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{render.filename(view)}.pdf"'})


@router.post("/playbooks/{playbook_id}/publish", response_model=Playbook)
def publish(playbook_id: uuid.UUID, session: SessionDep, settings: SettingsDep, caller: CallerDep,
            response: Response) -> Playbook:
    """Write the playbook into the playbook repository as an SOP: one commit (or the sync pull request)."""
    user = user_id_of(session, caller)
    try:
        _call(publishing.publish, session, settings, user, playbook_id)
    except publishing.PublishError as exc:
        raise HTTPException(422, str(exc)) from None
    return _playbook(session, user, playbook_id, response)
