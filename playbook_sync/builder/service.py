"""CRUD over playbooks and scenarios with the ownership rules and optimistic concurrency.

Ownership: a user edits only their own playbooks and reads another's only when it is
published or a template. Whatever a user may not see is NotFound (the API's 404, never a
403 that would confirm the playbook exists). Concurrency: every row has a version (its
ETag); a change that names a stale version or `updated_at` is a Conflict and changes
nothing. The row is locked (FOR UPDATE) between the check and the write, so two writers
holding the same version cannot both succeed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from playbook_sync.builder.models import (
    MODULE_NAMES,
    SCENARIO_FIELDS,
    ContentModules,
    Playbook,
    PlaybookIn,
    PlaybookUpdate,
    Scenario,
    ScenarioIn,
    ScenarioUpdate,
)
from playbook_sync.builder.tables import ModuleSources, PlaybookRow, ScenarioRow, User


class NotFound(LookupError):
    """No such playbook or scenario for this user (or one they may not see)."""


class Conflict(Exception):
    """The change was based on a stale version; `current` is the row's ETag now."""

    def __init__(self, current: str) -> None:
        super().__init__(f"the item changed since you read it (now {current}); reload and apply your change again")
        self.current = current


def etag(row: PlaybookRow | ScenarioRow) -> str:
    return f'"{row.version}"'


def now() -> datetime:
    return datetime.now(UTC)


def _visible(user_id: int):
    return or_(PlaybookRow.user_id == user_id, PlaybookRow.status == "published", PlaybookRow.is_template.is_(True))


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_playbooks(session: Session, user_id: int, *, status: str | None = None, industry: str | None = None,
                   persona: str | None = None, template: bool | None = None, text: str | None = None) -> list[Playbook]:
    """The playbooks this user may read, newest change first, filtered (industry/persona: case-insensitive equality)."""
    query: Select = select(PlaybookRow).where(_visible(user_id))
    if status:
        query = query.where(PlaybookRow.status == status)
    if industry:
        query = query.where(func.lower(PlaybookRow.industry) == industry.strip().lower())
    if persona:
        query = query.where(func.lower(PlaybookRow.target_persona) == persona.strip().lower())
    if template is not None:
        query = query.where(PlaybookRow.is_template.is_(template))
    if text and text.strip():
        pattern = _like(text.strip())
        query = query.where(or_(*(c.ilike(pattern, escape="\\") for c in (
            PlaybookRow.title, PlaybookRow.description, PlaybookRow.target_persona, PlaybookRow.industry,
            PlaybookRow.product_line))))
    rows = session.scalars(query.options(selectinload(PlaybookRow.scenarios))
                           .order_by(PlaybookRow.updated_at.desc(), PlaybookRow.id)).all()
    return views(session, rows)


def views(session: Session, rows: Iterable[PlaybookRow]) -> list[Playbook]:
    rows = list(rows)
    owners = dict(session.execute(select(User.id, User.name).where(User.id.in_({r.user_id for r in rows}))).all())
    sources = _sources(session, [s.id for r in rows for s in r.scenarios])
    return [_view(r, owners.get(r.user_id, ""), sources) for r in rows]


def _sources(session: Session, scenario_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, list]]:
    found: dict[uuid.UUID, dict[str, list]] = {}
    if scenario_ids:
        for row in session.scalars(select(ModuleSources).where(ModuleSources.scenario_id.in_(scenario_ids))):
            found.setdefault(row.scenario_id, {})[row.module] = row.sources
    return found


def _view(row: PlaybookRow, owner: str, sources: dict) -> Playbook:
    return Playbook.model_validate({
        **{c: getattr(row, c) for c in ("id", "user_id", "title", "description", "target_persona", "industry",
                                        "product_line", "status", "is_template", "published_path", "published_sha",
                                        "created_at", "updated_at")},
        "owner": owner, "scenarios": [scenario_view(s, sources.get(s.id, {})) for s in row.scenarios]})


def scenario_view(row: ScenarioRow, sources: dict | None = None) -> Scenario:
    return Scenario.model_validate({
        **{c: getattr(row, c) for c in ("id", "playbook_id", "position", "title", "deal_stage", "meeting_context",
                                        "customer_pain_points", "competitors", "edited", "created_at", "updated_at")},
        "content_modules": row.content_modules or {}, "sources": sources or {}})


def _readable(session: Session, user_id: int, playbook_id: uuid.UUID) -> PlaybookRow:
    row = session.scalar(select(PlaybookRow).where(PlaybookRow.id == playbook_id, _visible(user_id))
                         .options(selectinload(PlaybookRow.scenarios)))
    if row is None:
        raise NotFound(f"no playbook {playbook_id}")
    return row


def owned(session: Session, user_id: int, playbook_id: uuid.UUID, *, lock: bool = False) -> PlaybookRow:
    """The user's own playbook (locked for the transaction when asked), else NotFound."""
    query = select(PlaybookRow).where(PlaybookRow.id == playbook_id, PlaybookRow.user_id == user_id)
    row = session.scalar(query.with_for_update().execution_options(populate_existing=True) if lock else query)
    if row is None:
        raise NotFound(f"no playbook {playbook_id}")
    return row


def get_playbook(session: Session, user_id: int, playbook_id: uuid.UUID) -> tuple[Playbook, str]:
    """The playbook with its scenarios, and its ETag."""
    row = _readable(session, user_id, playbook_id)
    return views(session, [row])[0], etag(row)


def create_playbook(session: Session, user_id: int, body: PlaybookIn) -> PlaybookRow:
    row = PlaybookRow(user_id=user_id, **body.model_dump(mode="json"), edited=[], version=1)
    session.add(row)
    session.flush()
    session.refresh(row)
    return row


def _fresh(row: PlaybookRow | ScenarioRow, if_match: str | None, updated_at: datetime | None) -> None:
    """Conflict unless the caller's version (If-Match) and updated_at, when given, are the row's own."""
    if if_match is not None and if_match.strip() != "*":
        wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
        if etag(row) not in wanted:
            raise Conflict(etag(row))
    if updated_at is not None:
        stamp = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=UTC)
        if stamp != row.updated_at:
            raise Conflict(etag(row))


def _touch(row: PlaybookRow | ScenarioRow) -> None:
    row.version += 1
    row.updated_at = now()


def update_playbook(session: Session, user_id: int, playbook_id: uuid.UUID, body: PlaybookUpdate,
                    if_match: str | None = None) -> PlaybookRow:
    """Apply the fields sent; a changed description counts as a person's edit (generation keeps it)."""
    row = owned(session, user_id, playbook_id, lock=True)
    _fresh(row, if_match, body.updated_at)
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"updated_at"})
    changed = [k for k, v in changes.items() if v is not None and getattr(row, k) != v]
    for key in changed:
        setattr(row, key, changes[key])
    if changed:
        if "description" in changed:
            row.edited = sorted(set(row.edited) | {"description"})
        _touch(row)
    session.flush()
    return row


def delete_playbook(session: Session, user_id: int, playbook_id: uuid.UUID) -> None:
    session.delete(owned(session, user_id, playbook_id, lock=True))
    session.flush()


def add_scenario(session: Session, user_id: int, playbook_id: uuid.UUID, body: ScenarioIn) -> ScenarioRow:
    playbook = owned(session, user_id, playbook_id, lock=True)
    return insert_scenario(session, playbook, body, edited=_filled(body))


def _filled(body: ScenarioIn) -> list[str]:
    """What a person wrote in a new scenario's content modules: generation must not replace it unasked."""
    modules = body.content_modules.model_dump()
    return [m for m in MODULE_NAMES if modules[m]]


def insert_scenario(session: Session, playbook: PlaybookRow, body: ScenarioIn, *, edited: list[str]) -> ScenarioRow:
    position = session.scalar(select(func.coalesce(func.max(ScenarioRow.position), 0))
                              .where(ScenarioRow.playbook_id == playbook.id)) + 1
    data = body.model_dump(mode="json")
    row = ScenarioRow(playbook_id=playbook.id, position=position, edited=edited, version=1, **data)
    session.add(row)
    _touch(playbook)  # the playbook's scenario list changed
    session.flush()
    session.refresh(row)
    return row


def scenario_of(session: Session, user_id: int, playbook_id: uuid.UUID, scenario_id: uuid.UUID, *,
                lock: bool = False) -> ScenarioRow:
    """One scenario of the user's own playbook, else NotFound."""
    owned(session, user_id, playbook_id)
    query = select(ScenarioRow).where(ScenarioRow.id == scenario_id, ScenarioRow.playbook_id == playbook_id)
    row = session.scalar(query.with_for_update().execution_options(populate_existing=True) if lock else query)
    if row is None:
        raise NotFound(f"no scenario {scenario_id} in playbook {playbook_id}")
    return row


def update_scenario(session: Session, user_id: int, playbook_id: uuid.UUID, scenario_id: uuid.UUID,
                    body: ScenarioUpdate, if_match: str | None = None) -> ScenarioRow:
    """Apply the fields sent; each field or module whose value changes is recorded as edited by a person."""
    row = scenario_of(session, user_id, playbook_id, scenario_id, lock=True)
    _fresh(row, if_match, body.updated_at)
    changed = False
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"updated_at"})
    edited = set(row.edited)
    for key in SCENARIO_FIELDS:
        if changes.get(key) is not None and getattr(row, key) != changes[key]:
            setattr(row, key, changes[key])
            edited.add(key)
            changed = True
    if changes.get("content_modules") is not None:
        current = ContentModules.model_validate(row.content_modules or {}).model_dump(mode="json")
        wanted = changes["content_modules"]
        touched = [m for m in MODULE_NAMES if current[m] != wanted[m]]
        if touched:
            row.content_modules = wanted
            edited.update(touched)
            changed = True
    if changed:
        row.edited = sorted(edited)
        _touch(row)
    session.flush()
    return row


def delete_scenario(session: Session, user_id: int, playbook_id: uuid.UUID, scenario_id: uuid.UUID) -> None:
    row = scenario_of(session, user_id, playbook_id, scenario_id, lock=True)
    session.delete(row)
    _touch(owned(session, user_id, playbook_id, lock=True))
    session.flush()


def sources_of(session: Session, scenario_id: uuid.UUID) -> dict[str, list]:
    return _sources(session, [scenario_id]).get(scenario_id, {})
