"""What a route may ask for: the settings, a database session, the caller (bearer token)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from playbook_sync.config import Settings
from playbook_sync.db import get_engine


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request, committed when the route returns, rolled back when it raises.

    Scoped to the route function (see SessionDep): FastAPI's default ends a yield dependency
    after the response is sent, so a client could read its own write before it was committed
    (a 204 DELETE, then a GET that still finds the row) and a failed commit came after a 2xx."""
    with Session(get_engine(settings.database_url)) as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: the operator (the settings' API token, or anyone on a token-less
    local server), or a user of the Playbook Builder (user_id set)."""

    name: str
    user_id: int | None = None

    @property
    def operator(self) -> bool:
        return self.user_id is None


OPERATOR = Caller(name="operator")


def get_caller(settings: SettingsDep, session: SessionDep,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    """The operator token from settings, else a user's token; without API_TOKEN set the server
    listens on 127.0.0.1 only (see `serve`) and a request without a token is the operator."""
    token = credentials.credentials if credentials else None
    expected = settings.api_token.get_secret_value() if settings.api_token else None
    if token is None:
        if expected is None:
            return OPERATOR
        raise HTTPException(401, "a bearer token is required (Authorization: Bearer …)", headers={"WWW-Authenticate": "Bearer"})
    if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return OPERATOR
    user = _user_for_token(session, token)
    if user is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return user


def _user_for_token(session: Session, token: str) -> Caller | None:
    """A Playbook Builder user's token (`playbook-sync users add NAME`), looked up by its hash."""
    from playbook_sync.builder.users import user_for_token

    user = user_for_token(session, token)
    return Caller(name=user.name, user_id=user.id) if user else None


CallerDep = Annotated[Caller, Depends(get_caller)]
