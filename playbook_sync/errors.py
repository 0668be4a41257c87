"""Configuration errors as sentences: what is wrong and which setting to change.

The CLI and the worker turn these (and a few library exceptions that mean "your settings
are wrong or a service is not there") into one line instead of a traceback. No typer here:
the domain raises, the entry points decide how to show it.
"""

from __future__ import annotations

import re

PREFIX = "PLAYBOOK_SYNC_"


class ConfigError(ValueError):
    """A setting that cannot work; the message says why, `setting` names the variable to change."""

    def __init__(self, setting: str, message: str) -> None:
        # args stay (setting, message) so Celery can rebuild it from a task's failure meta.
        super().__init__(setting, message)
        self.setting, self.message = setting, message

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


class ServiceError(RuntimeError):
    """A service the command started itself (the local worker) stopped or never answered; the message says
    what happened and where its log is. Not a bug to show as a traceback: the log has the why."""


def env_name(field: str) -> str:
    """The environment variable of a Settings field: top_k → PLAYBOOK_SYNC_TOP_K."""
    return f"{PREFIX}{field.upper()}"


def one_line(text: str) -> str:
    """The first non-empty line, whitespace collapsed (driver errors add hint lines)."""
    for line in str(text).splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


def explain(exc: BaseException) -> str | None:
    """One line for a known configuration or service failure, else None (a bug: show it)."""
    if isinstance(exc, (ConfigError, ServiceError)):
        return one_line(str(exc))
    for check in (_settings_error, _database_error, _broker_error, _domain_error):
        message = check(exc)
        if message:
            return message
    return None


def _settings_error(exc: BaseException) -> str | None:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, ValidationError) and exc.title == "Settings":
        lines = [_validation_line(error) for error in exc.errors(include_url=False)]
        return "; ".join(lines[:3]) + (f" (and {len(lines) - 3} more)" if len(lines) > 3 else "")
    if isinstance(exc, SettingsError):
        # pydantic-settings parses JSON-valued settings before validation and names the field only here.
        match = re.search(r'field "([^"]+)"', str(exc))
        setting = env_name(match.group(1)) if match else "a PLAYBOOK_SYNC_ setting"
        cause = exc.__cause__
        return f"{setting}: not valid JSON ({one_line(str(cause))})" if cause else f"{setting}: {one_line(str(exc))}"
    return None


def _validation_line(error: dict) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    field = loc[0] if loc else ""
    setting = field.upper() if field.upper().startswith(PREFIX) else env_name(field)
    where = ".".join(loc[1:])
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown key (allowed: " + ", ".join(_allowed(error)) + ")" if _allowed(error) else "unknown key"
    return f"{setting}: {where + ': ' if where else ''}{message}"


def _allowed(error: dict) -> list[str]:
    # Bands is the only nested object that forbids extra keys.
    return ["strong", "weak"] if "bands" in [str(p) for p in error.get("loc", ())] else []


def _database_error(exc: BaseException) -> str | None:
    from alembic.util import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

    if isinstance(exc, CommandError):  # e.g. a revision this version does not have, typed or left by a newer version
        return (f"database migrations: {one_line(str(exc))} (`db downgrade` takes -1, base or one of this version's "
                "revisions; a database a newer version upgraded is downgraded with that version)")

    if isinstance(exc, OperationalError):
        return f"cannot use the database: {one_line(str(exc.orig))} (check {PREFIX}DATABASE_URL)"
    if isinstance(exc, ArgumentError) and "URL" in str(exc):
        return f"{PREFIX}DATABASE_URL: not a database URL (expected postgresql+psycopg2://user:password@host:port/name)"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return f"lost the database connection: {one_line(str(exc.orig))} (check {PREFIX}DATABASE_URL)"
    return None


def _broker_error(exc: BaseException) -> str | None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    # Celery's messaging layer (kombu) re-raises the Redis error as its own while handling it;
    # the Redis error stays on the chain, so the domain needs no Celery import to recognise it.
    cause: BaseException | None = exc
    for _ in range(8):  # bounded: a chain is short, and a cycle must not hang the error path
        if cause is None:
            break
        if isinstance(cause, (RedisConnectionError, RedisTimeoutError)):
            return f"cannot reach the broker: {one_line(str(cause))} (check {PREFIX}BROKER_URL)"
        cause = cause.__cause__ or cause.__context__
    return None


def _domain_error(exc: BaseException) -> str | None:
    from playbook_sync.providers.base import ProviderError
    from playbook_sync.store import RunLocked

    if isinstance(exc, (ProviderError, RunLocked)):
        return one_line(str(exc))
    return None

