"""GET /api/search, GET /api/context: hybrid search and context for prompts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from playbook_sync import context, search
from playbook_sync.api.state import SessionDep, SettingsDep, get_caller

router = APIRouter(prefix="/api", tags=["search"], dependencies=[Depends(get_caller)])
Status = Literal["completed", "failed", "in-progress"]


def _since(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


@router.get("/search")
def get_search(session: SessionDep, settings: SettingsDep,
               q: Annotated[str, Query(min_length=1, max_length=2000, description="what to look for")],
               type: Annotated[list[Literal["sop", "entry", "report"]] | None, Query()] = None,  # noqa: A002 (the API's name)
               customer: str | None = None, account: str | None = None, playbook: str | None = None,
               status: Status | None = None, since: datetime | None = None,
               limit: Annotated[int, Query(ge=1, le=search.MAX_LIMIT)] = 10) -> dict:
    """Hybrid search across SOP sections, entries and reports: results with type, score, title, snippet, link."""
    from playbook_sync.deps import build_embedder

    try:
        filters = search.Filters(types=tuple(type) if type else search.KINDS, customer=customer, account=account,
                                 playbook=playbook, status=status, since=_since(since), limit=limit)
        results = search.search(session, build_embedder(settings), q, filters)
    except search.SearchError as exc:
        raise HTTPException(422, [{"loc": ["query", "q"], "field": "q", "msg": str(exc)}]) from None
    return {"query": q, "results": [r.to_dict() for r in results]}


@router.get("/context")
def get_context(session: SessionDep, settings: SettingsDep,
                customer_id: Annotated[str, Query(min_length=1, max_length=200)],
                query: Annotated[str | None, Query(max_length=2000)] = None,
                account: str | None = None, playbook: str | None = None, status: Status | None = "completed",
                recent: Annotated[int, Query(ge=0, le=context.MAX_ITEMS)] = 3,
                similar: Annotated[int, Query(ge=0, le=context.MAX_ITEMS)] = 3) -> dict:
    """The customer's most recent reports (filters: account, playbook, status) and the most similar successful
    reports of other customers, as JSON and as a "RECENT PLAYBOOK INSIGHTS" text block."""
    from playbook_sync.deps import build_embedder

    return context.build(session, build_embedder(settings), customer_id=customer_id, query=query, account=account,
                         playbook=playbook, status=status, recent=recent, similar=similar)
