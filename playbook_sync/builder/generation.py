"""Generation jobs: created by the API, run by a Celery task (ids in), progress kept on the job row.

A job commits its progress in short transactions so GET /api/jobs/{id} sees it move. Writes
re-read and lock their row first, so what a person edited while the model was answering is
still respected, and a playbook deleted meanwhile ends the job with a sentence, not a
traceback. Every provider call is metered (costs.metered, as in runs) and summed on the job.

A job whose worker or broker message was lost would stay queued or running for good: fail_unfinished
ends such jobs with a sentence (at serve's start, when its worker dies, and in the watchdog), as
lifecycle does for runs. Failing is enough: the page shows the error and generating again retries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from playbook_sync import costs
from playbook_sync.builder import grounding
from playbook_sync.builder.models import (
    MODULE_NAMES,
    GenerateRequest,
    ModulesRequest,
    OutlineRequest,
    ScenarioGenerateRequest,
    ScenarioIn,
    Source,
)
from playbook_sync.builder.service import NotFound, _touch, insert_scenario, now, owned, scenario_of
from playbook_sync.builder.tables import GenerationJob, ModuleSources, PlaybookRow, ScenarioRow

log = logging.getLogger(__name__)
SOURCES_PER_CALL = 8
UNFINISHED = ("queued", "running")
RETRY_HINT = "generate again to retry"
Sessions = Callable[[], AbstractContextManager[Session]]


class Gone(Exception):
    """What the job writes into was deleted while it ran."""


def start_playbook_job(session: Session, user_id: int, body: GenerateRequest) -> GenerationJob:
    """A draft playbook named as asked, and the job that fills it."""
    playbook = PlaybookRow(user_id=user_id, title=body.title, target_persona=body.target_persona,
                           industry=body.industry, product_line=body.product_line, edited=[], version=1)
    session.add(playbook)
    session.flush()
    job = GenerationJob(kind="playbook", user_id=user_id, playbook_id=playbook.id, request=body.model_dump(mode="json"),
                        message="queued")
    session.add(job)
    session.flush()
    return job


def start_scenario_job(session: Session, user_id: int, playbook_id: uuid.UUID, scenario_id: uuid.UUID,
                       body: ScenarioGenerateRequest) -> GenerationJob:
    scenario_of(session, user_id, playbook_id, scenario_id)  # NotFound unless it is theirs
    job = GenerationJob(kind="scenario", user_id=user_id, playbook_id=playbook_id, scenario_id=scenario_id,
                        request=body.model_dump(mode="json"), message="queued")
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, user_id: int, job_id: uuid.UUID) -> GenerationJob:
    job = session.get(GenerationJob, job_id)
    if job is None or job.user_id != user_id:
        raise NotFound(f"no job {job_id}")
    return job


def fail_unfinished(session: Session, *, error: str, idle_seconds: int | None = None,
                    created_before: datetime | None = None, at: datetime | None = None) -> list[uuid.UUID]:
    """Fail the jobs still queued or running with error; their ids. idle_seconds: only those whose row has not
    moved for that long; created_before: only those older. What they made so far stays (playbook, result)."""
    at = at or now()
    query = select(GenerationJob).where(GenerationJob.status.in_(UNFINISHED)).order_by(GenerationJob.created_at)
    if idle_seconds is not None:
        query = query.where(GenerationJob.updated_at < at - timedelta(seconds=idle_seconds))
    if created_before is not None:
        query = query.where(GenerationJob.created_at < created_before)
    # SKIP LOCKED: a row a live worker is writing right now is making progress, so it is not ours to end.
    jobs = list(session.scalars(query.with_for_update(skip_locked=True)))
    for job in jobs:
        job.status, job.progress, job.message, job.error, job.updated_at = "failed", 0, "failed", error, at
    return [job.id for job in jobs]


def stale_job_error(deadline_seconds: int) -> str:
    return f"watchdog: no progress for {deadline_seconds}s (its worker or its queued task was lost); {RETRY_HINT}"


def reap_stale_jobs(session: Session, deadline_seconds: int) -> list[uuid.UUID]:
    """The watchdog's part for the builder: fail jobs queued or running without progress past the deadline."""
    failed = fail_unfinished(session, error=stale_job_error(deadline_seconds), idle_seconds=deadline_seconds)
    for job_id in failed:
        log.warning("watchdog failed builder job %s: no progress for %ss", job_id, deadline_seconds)
    return failed


def _progress(sessions: Sessions, job_id: uuid.UUID, *, unless_ended: bool = False, **values) -> bool:
    """Write the job's progress; with unless_ended, not over a job already failed by someone else (a serve or the
    watchdog that judged this worker gone: the page showed that failure, and it must not flip back)."""
    with sessions() as session:
        job = session.get(GenerationJob, job_id, with_for_update=unless_ended)
        if unless_ended and job.status in ("succeeded", "failed"):
            return False
        for key, value in values.items():
            setattr(job, key, value)
        job.updated_at = now()
    return True


def run_job(sessions: Sessions, embedder, llm, ledger: costs.Ledger, job_id: uuid.UUID) -> dict:
    """The task body: run the job once (a finished job is left alone); never raises for the job's own failures."""
    with sessions() as session:
        job = session.get(GenerationJob, job_id)
        if job is None or job.status in ("succeeded", "failed"):
            return {"job_id": str(job_id), "status": job.status if job else "missing"}
        job.status, job.progress, job.message, job.updated_at = "running", 5, "finding sources", now()
        kind = job.kind
    calls: list[costs.Call] = []
    try:
        with sessions() as session, costs.metered(session, ledger, run_id=None, apart=True) as meter:
            calls = meter.calls  # the list the calls land in (persisting swaps in a new one)
            step = _playbook if kind == "playbook" else _scenario
            result = step(sessions, embedder, llm, job_id)
        status, error, message = "succeeded", None, "done"
    except (Gone, NotFound) as exc:
        status, error, message, result = "failed", f"{exc}", "stopped", _partial(sessions, job_id)
    except Exception as exc:  # a provider's failure, told as its sentence; the job row keeps it
        status, error, message, result = "failed", f"{type(exc).__name__}: {exc}", "failed", _partial(sessions, job_id)
    cost = sum(c.cost_usd for c in calls)
    usage = {"calls": len(calls), **{f: sum(getattr(c.usage, f) for c in calls) for f in costs.TOKEN_FIELDS}}
    ended = _progress(sessions, job_id, status=status, error=error, message=message, result=result,
                      progress=100 if status == "succeeded" else 0, cost_usd=cost, usage=usage, unless_ended=True)
    return {"job_id": str(job_id), "status": status if ended else "failed"}


def _partial(sessions: Sessions, job_id: uuid.UUID) -> dict | None:
    """What a failed job made before it failed (its scenario ids), kept on the row."""
    with sessions() as session:
        return session.get(GenerationJob, job_id).result


def _refs(found: list[dict]) -> list[tuple[str, Source]]:
    return [(f"src-{i}", Source.model_validate(s)) for i, s in enumerate(found, start=1)]


def _cited(sources: list[tuple[str, Source]], refs: list[str]) -> list[dict]:
    by_ref = dict(sources)
    return [by_ref[r].model_dump(exclude={"text"}) | {"ref": r} for r in refs if r in by_ref]


def _playbook(sessions: Sessions, embedder, llm, job_id: uuid.UUID) -> dict:
    with sessions() as session:
        job = session.get(GenerationJob, job_id)
        ask = dict(job.request)
        playbook_id, user_id = job.playbook_id, job.user_id
        if playbook_id is None:
            raise Gone("the playbook was deleted before generation started")
        query = " ".join(filter(None, [ask["title"], ask.get("target_persona"), ask.get("industry"),
                                       ask.get("product_line"), ask.get("goals")]))
        sources = _refs(grounding.sources_for(session, embedder, query, SOURCES_PER_CALL))
        job.sources = [s.model_dump(exclude={"text"}) | {"ref": r} for r, s in sources]
        # A redelivered task (worker lost mid-job) continues with the scenarios it already made.
        ids = [uuid.UUID(i) for i in (job.result or {}).get("scenario_ids", [])]
    if not ids:
        outline = llm.generate_outline(OutlineRequest(**ask, sources=sources))
        _progress(sessions, job_id, progress=20, message=f"writing {len(outline.scenarios)} scenarios")
        with sessions() as session:
            playbook = _locked_playbook(session, user_id, playbook_id)
            if "description" not in playbook.edited:
                playbook.description = outline.description
            ids = [insert_scenario(session, playbook, ScenarioIn(**s.model_dump()), edited=[]).id
                   for s in outline.scenarios]
            session.get(GenerationJob, job_id).result = {"playbook_id": str(playbook_id),
                                                         "scenario_ids": [str(i) for i in ids]}
    for i, scenario_id in enumerate(ids, start=1):
        _modules(sessions, embedder, llm, job_id, user_id, playbook_id, scenario_id, list(MODULE_NAMES), False)
        _progress(sessions, job_id, progress=20 + 80 * i // (len(ids) + 1), message=f"scenario {i} of {len(ids)} written")
    return {"playbook_id": str(playbook_id), "scenario_ids": [str(s) for s in ids]}


def _scenario(sessions: Sessions, embedder, llm, job_id: uuid.UUID) -> dict:
    with sessions() as session:
        job = session.get(GenerationJob, job_id)
        if job.playbook_id is None or job.scenario_id is None:
            raise Gone("the scenario was deleted before generation started")
        ask = ScenarioGenerateRequest.model_validate(job.request)
        ids = job.user_id, job.playbook_id, job.scenario_id
    wanted = list(ask.modules or MODULE_NAMES)
    return _modules(sessions, embedder, llm, job_id, *ids, wanted, ask.overwrite)


def _locked_playbook(session: Session, user_id: int, playbook_id: uuid.UUID) -> PlaybookRow:
    try:
        return owned(session, user_id, playbook_id, lock=True)
    except NotFound:
        raise Gone("the playbook was deleted during generation") from None


def _modules(sessions: Sessions, embedder, llm, job_id: uuid.UUID, user_id: int, playbook_id: uuid.UUID,
             scenario_id: uuid.UUID, wanted: list[str], overwrite: bool) -> dict:
    """Generate one scenario's modules; write those wanted and not edited by a person (unless overwrite)."""
    with sessions() as session:
        playbook = _locked_playbook(session, user_id, playbook_id)
        scenario = session.get(ScenarioRow, scenario_id)
        if scenario is None or scenario.playbook_id != playbook_id:
            raise Gone("the scenario was deleted during generation")
        spec = ScenarioIn.model_validate({c: getattr(scenario, c) for c in (
            "title", "deal_stage", "meeting_context", "customer_pain_points", "competitors")})
        meta = {"playbook_title": playbook.title, "target_persona": playbook.target_persona,
                "industry": playbook.industry, "product_line": playbook.product_line}
        query = " ".join([spec.title, spec.deal_stage.value, spec.meeting_context, *spec.customer_pain_points,
                          playbook.product_line, playbook.target_persona])
        sources = _refs(grounding.sources_for(session, embedder, query, SOURCES_PER_CALL))
        job = session.get(GenerationJob, job_id)
        job.sources = job.sources + [s.model_dump(exclude={"text"}) | {"ref": r} for r, s in sources] \
            if job.kind == "playbook" else [s.model_dump(exclude={"text"}) | {"ref": r} for r, s in sources]
    draft = llm.generate_modules(ModulesRequest(**meta, scenario=spec, modules=wanted, sources=sources))
    with sessions() as session:
        _locked_playbook(session, user_id, playbook_id)
        scenario = session.scalar(select(ScenarioRow).where(ScenarioRow.id == scenario_id).with_for_update()
                                  .execution_options(populate_existing=True))
        if scenario is None:
            raise Gone("the scenario was deleted during generation")
        written, kept = write_modules(session, scenario, draft, wanted, overwrite, job_id, sources)
    return {"playbook_id": str(playbook_id), "scenario_id": str(scenario_id), "written": written, "kept_edited": kept}


def write_modules(session: Session, scenario: ScenarioRow, draft, wanted: list[str], overwrite: bool,
                  job_id: uuid.UUID, sources: list[tuple[str, Source]]) -> tuple[list[str], list[str]]:
    """Put the draft's wanted modules in place, except those a person edited (unless overwrite); keep their sources."""
    modules = dict(scenario.content_modules or {})
    fresh = draft.modules.model_dump(mode="json")
    edited = set(scenario.edited)
    written = [m for m in wanted if overwrite or m not in edited]
    for module in written:
        modules[module] = fresh[module]
        edited.discard(module)
        cited = _cited(sources, draft.module_sources.get(module, []))
        row = session.get(ModuleSources, (scenario.id, module))
        if row is None:
            session.add(ModuleSources(scenario_id=scenario.id, module=module, job_id=job_id, sources=cited))
        else:
            row.job_id, row.sources = job_id, cited
    if written:
        scenario.content_modules = modules
        scenario.edited = sorted(edited)
        _touch(scenario)
    return written, [m for m in wanted if m not in written]
