"""The FastAPI app: settings and sessions on app.state, the request guards, the routers, /healthz.

Routes stay thin: they validate the request (pydantic), call a service function of the domain
and shape its answer. Each feature adds its router in ROUTERS below and nothing else here.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

from playbook_sync import __version__
from playbook_sync.api.limits import BodySizeLimit, NulRefused
from playbook_sync.api.state import SessionDep
from playbook_sync.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app over `settings` (default: the process's settings; the database URL must be set)."""
    settings = settings or get_settings()
    app = FastAPI(title="playbook-sync", version=__version__,
                  description="Knowledge, execution reports, search, runs and playbooks of playbook-sync.")
    app.state.settings = settings
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(NulRefused)
    app.add_exception_handler(RequestValidationError, _invalid)

    @app.get("/healthz", tags=["operations"])
    def healthz(session: SessionDep) -> dict:
        """The app answers and its database does."""
        session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    for router in _routers():
        app.include_router(router)
    return app


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each wrong field, without echoing the value: FastAPI's default sends it back whole (a
    2,000-character query), and one holding a lone surrogate cannot even be encoded (it became a 500)."""
    errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


def _routers() -> list:
    """Every feature's router; imported here so that each stays a module of its own."""
    from playbook_sync.api import builder, learning, pages, routes_knowledge, routes_runs, routes_search

    return [
        routes_knowledge.router,
        routes_search.router,
        routes_runs.router,
        builder.router,
        pages.router,
        learning.router,
    ]
