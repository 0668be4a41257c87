"""The Playbook Builder's pages: server-rendered (Jinja2) forms that post and redirect; a few lines of JS poll jobs.

Who a page acts as: on a token-less local server, the operator's local user; with
PLAYBOOK_SYNC_API_TOKEN set, the token typed into /login (the operator's or a user's),
kept in an HttpOnly, SameSite=Strict cookie (so another site cannot post our forms).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session

from playbook_sync.api.builder import enqueue
from playbook_sync.api.state import SessionDep, SettingsDep
from playbook_sync.builder import generation, publishing, render, service
from playbook_sync.builder.models import (
    MODULE_NAMES,
    DealStage,
    GenerateRequest,
    JobView,
    PlaybookIn,
    PlaybookStatus,
    PlaybookUpdate,
    ScenarioGenerateRequest,
    ScenarioIn,
    ScenarioUpdate,
)
from playbook_sync.builder.users import local_user_id, user_for_token
from playbook_sync.config import Settings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
COOKIE = "playbook_sync_token"
LIST_MODULES = ("key_messages", "value_propositions", "discovery_questions", "next_steps")


class _Login(Exception):
    pass


def page_user(request: Request, session: Session, settings: Settings) -> int:
    """The user a page acts as (see module docstring); _Login when a token is needed."""
    if settings.api_token is None:
        return local_user_id(session)
    token = request.cookies.get(COOKIE, "")
    if token and token == settings.api_token.get_secret_value():
        return local_user_id(session)
    user = user_for_token(session, token) if token else None
    if user is None:
        raise _Login
    return user.id


def _go(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name not in ("builder.js", "builder.css"):
        raise HTTPException(404)
    return FileResponse(HERE / "static" / name)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, error: str = "") -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"error": error})


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    token = str((await request.form()).get("token", "")).strip()
    known = settings.api_token is not None and token == settings.api_token.get_secret_value()
    if not (known or (token and user_for_token(session, token))):
        return templates.TemplateResponse(request, "login.html", {"error": "That token is not known."}, status_code=401)
    response = _go("/playbooks")
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


def _guard(handler):
    """Run a page handler; a missing login goes to /login, NotFound is a 404 page."""
    def run(request: Request, session: Session, settings: Settings, *args):
        try:
            return handler(request, session, page_user(request, session, settings), *args)
        except _Login:
            return _go("/login")
        except service.NotFound:
            return templates.TemplateResponse(request, "missing.html", {}, status_code=404)
    return run


@router.get("/playbooks", response_class=HTMLResponse)
def library(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    def page(request, session, user):
        q = request.query_params
        template = {"yes": True, "no": False}.get(q.get("template", ""))
        status = q.get("status") if q.get("status") in {s.value for s in PlaybookStatus} else None
        items = service.list_playbooks(session, user, status=status, industry=q.get("industry") or None,
                                       persona=q.get("persona") or None, template=template, text=q.get("text") or None)
        return templates.TemplateResponse(request, "library.html", {"playbooks": items, "q": q, "user": user,
                                                                    "statuses": list(PlaybookStatus), "error": q.get("error")})
    return _guard(page)(request, session, settings)


@router.post("/playbooks/new")
async def create(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await request.form()

    def page(request, session, user):
        try:
            body = PlaybookIn(title=str(form.get("title", "")), target_persona=str(form.get("target_persona", "")),
                              industry=str(form.get("industry", "")))
        except ValidationError as exc:  # which field and why: a 500-character title does not "need a title"
            return _go("/playbooks?" + urlencode({"error": _first_error(exc)}))
        return _go(f"/playbooks/{service.create_playbook(session, user, body).id}")
    return _guard(page)(request, session, settings)


@router.post("/playbooks/generate")
async def generate_new(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}

    def page(request, session, user):
        try:
            body = GenerateRequest(**{k: form.get(k, "") for k in ("title", "target_persona", "industry", "product_line",
                                                                   "goals")}, scenarios=int(form.get("scenarios") or 4))
        except (ValidationError, ValueError):
            return _go("/playbooks?error=Generation+needs+a+title+and+3+to+6+scenarios.")
        job = enqueue(session, settings, generation.start_playbook_job(session, user, body))
        return _go(f"/playbooks/{job.playbook_id}?job={job.id}")
    return _guard(page)(request, session, settings)


@router.get("/playbooks/jobs/{job_id}")
def job_status(job_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    def page(request, session, user):
        return JSONResponse(JobView.model_validate(generation.get_job(session, user, job_id)).model_dump(mode="json"))
    return _guard(page)(request, session, settings)


@router.get("/playbooks/{playbook_id}", response_class=HTMLResponse)
def builder(playbook_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    def page(request, session, user):
        view, tag = service.get_playbook(session, user, playbook_id)
        q = request.query_params
        chosen = next((s for s in view.scenarios if str(s.id) == q.get("scenario")), view.scenarios[0] if view.scenarios else None)
        job = None
        if q.get("job"):
            try:
                job = JobView.model_validate(generation.get_job(session, user, uuid.UUID(q["job"])))
            except (ValueError, service.NotFound):
                job = None
        return templates.TemplateResponse(request, "builder.html", {
            "p": view, "etag": tag, "mine": view.user_id == user, "s": chosen, "job": job, "error": q.get("error"),
            "saved": q.get("saved"), "stages": list(DealStage), "statuses": list(PlaybookStatus), "labels": render.LABELS,
            "modules": MODULE_NAMES, "list_modules": LIST_MODULES})
    return _guard(page)(request, session, settings)


def _back(pid, sid=None, **params) -> RedirectResponse:
    query = urlencode({k: str(v) for k, v in {"scenario": sid, **params}.items() if v})
    return _go(f"/playbooks/{pid}" + (f"?{query}" if query else ""))


@router.post("/playbooks/{playbook_id}/{action}")
async def playbook_action(playbook_id: uuid.UUID, action: str, request: Request, session: SessionDep,
                          settings: SettingsDep) -> Response:
    """meta (save the sidebar form), scenario (add one), publish, delete."""
    form = {k: str(v) for k, v in (await request.form()).items()}

    def page(request, session, user):
        try:
            if action == "meta":
                body = PlaybookUpdate(**{k: form.get(k, "") for k in ("title", "description", "target_persona", "industry",
                                                                      "product_line", "status")},
                                      is_template=form.get("is_template") == "on")
                service.update_playbook(session, user, playbook_id, body, form.get("etag"))
                return _back(playbook_id, form.get("scenario"), saved="playbook")
            if action == "scenario":
                row = service.add_scenario(session, user, playbook_id, ScenarioIn(
                    title=form.get("title", ""), deal_stage=form.get("deal_stage") or "discovery"))
                return _back(playbook_id, row.id, saved="scenario")
            if action == "publish":
                row = publishing.publish(session, settings, user, playbook_id)
                return _back(playbook_id, saved=f"published as {row.published_path}")
            if action == "delete":
                service.delete_playbook(session, user, playbook_id)
                return _go("/playbooks")
        except ValidationError as exc:
            return _back(playbook_id, form.get("scenario"), error=_first_error(exc))
        except service.Conflict as exc:
            return _back(playbook_id, form.get("scenario"), error=str(exc))
        except publishing.PublishError as exc:
            return _back(playbook_id, error=str(exc))
        raise service.NotFound(action)
    return _guard(page)(request, session, settings)


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    return f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}"


_PAIR_FIELD = re.compile(r"(?:objection|response|remove)_(\d{1,6})")


def scenario_from_form(form: dict[str, str]) -> ScenarioUpdate:
    """The builder form: list editors are one item per line; objection pairs are numbered fields."""
    pairs = []
    # The numbers of the pair fields sent, not the form's "pairs" count: "abc" there was a 500 and
    # "1000000000" a loop that held a server thread for minutes.
    numbers = sorted({int(m.group(1)) for key in form if (m := _PAIR_FIELD.fullmatch(key))})
    for i in numbers:
        objection, response = form.get(f"objection_{i}", "").strip(), form.get(f"response_{i}", "").strip()
        if objection and form.get(f"remove_{i}") != "on":
            pairs.append({"objection": objection, "response": response})
    modules = {"opening_strategy": form.get("opening_strategy", ""), "objection_handling": pairs,
               **{m: _lines(form.get(m, "")) for m in LIST_MODULES}}
    return ScenarioUpdate(title=form.get("title", ""), deal_stage=form.get("deal_stage") or "discovery",
                          meeting_context=form.get("meeting_context", ""),
                          customer_pain_points=_lines(form.get("customer_pain_points", "")),
                          competitors=_lines(form.get("competitors", "")), content_modules=modules,
                          updated_at=form.get("updated_at") or None)


@router.post("/playbooks/{playbook_id}/scenarios/{scenario_id}/{action}")
async def scenario_action(playbook_id: uuid.UUID, scenario_id: uuid.UUID, action: str, request: Request,
                          session: SessionDep, settings: SettingsDep) -> Response:
    """save (the main form, guarded by its ETag), generate (all or one module), delete."""
    form = {k: str(v) for k, v in (await request.form()).items()}

    def page(request, session, user):
        try:
            if action == "save":
                service.update_scenario(session, user, playbook_id, scenario_id, scenario_from_form(form))
                return _back(playbook_id, scenario_id, saved="scenario")
            if action == "generate":
                module = form.get("module")
                body = ScenarioGenerateRequest(modules=[module] if module else None, overwrite=form.get("overwrite") == "on")
                job = enqueue(session, settings, generation.start_scenario_job(session, user, playbook_id, scenario_id, body))
                return _back(playbook_id, scenario_id, job=job.id)
            if action == "delete":
                service.delete_scenario(session, user, playbook_id, scenario_id)
                return _back(playbook_id, saved="deleted")
        except ValidationError as exc:
            return _back(playbook_id, scenario_id, error=_first_error(exc))
        except service.Conflict as exc:
            return _back(playbook_id, scenario_id, error=str(exc))
        raise service.NotFound(action)
    return _guard(page)(request, session, settings)


@router.get("/playbooks/{playbook_id}/export.{kind}")
def export(playbook_id: uuid.UUID, kind: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    def page(request, session, user):
        view, _ = service.get_playbook(session, user, playbook_id)
        name = render.filename(view)
        if kind == "md":
            return Response(render.markdown(view), media_type="text/markdown; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.md"'})
        if kind == "pdf":
            try:
                return Response(render.pdf(view), media_type="application/pdf",
                                headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
            except render.RendererMissing as exc:
                return _back(playbook_id, error=str(exc))
        raise service.NotFound(kind)
    return _guard(page)(request, session, settings)
