"""Checks a command makes before it uses anything: providers build, services answer, the playbook is there.

Each failure is a ConfigError naming the setting to change, so the CLI prints one line instead
of a traceback from deep inside a driver or a worker, minutes later.
"""

from __future__ import annotations

from playbook_sync import db
from playbook_sync.config import Settings
from playbook_sync.errors import ConfigError, one_line

# Seconds a service may take to answer a check; a black-holed host must not hang the CLI.
TIMEOUT = 5.0


def check_providers(settings: Settings) -> None:
    """Build the embedder and the LLM once: unknown names and missing keys surface now."""
    from playbook_sync.deps import build_embedder, build_llm, check_dimensions

    check_dimensions(settings)
    build_embedder(settings)
    build_llm(settings)  # AuthError (a ProviderError) names the key's variable


def check_broker(url: str, setting: str = "PLAYBOOK_SYNC_BROKER_URL", timeout: float = TIMEOUT) -> None:
    """One bounded connection to the broker (kombu: any transport Celery accepts)."""
    from kombu import Connection
    from kombu.utils.url import maybe_sanitize_url

    shown = maybe_sanitize_url(url)
    try:
        with Connection(url, connect_timeout=timeout,
                        transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout}) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=timeout)
    except KeyError as exc:  # kombu: 'No such transport: foo'
        raise ConfigError(setting, f"cannot use {shown}: {one_line(str(exc).strip(chr(39)))}") from None
    except Exception as exc:  # any failure to connect is a setting to fix, whatever the transport raises
        raise ConfigError(setting, f"cannot reach {shown}: {one_line(str(exc))}") from None


def check_services(settings: Settings, *, broker: bool = True) -> None:
    """Configured (not embedded) services answer: the database, and the broker when asked."""
    if settings.database_url:
        db.check(settings.database_url)
    if broker and settings.broker_url:
        check_broker(settings.broker_url)
        if settings.result_backend and settings.result_backend.startswith(("redis://", "rediss://")):
            check_broker(settings.result_backend, "PLAYBOOK_SYNC_RESULT_BACKEND")


def check_data_dir(settings: Settings) -> None:
    """DATA_DIR is a folder, or one this user can create: checked, not created (configured services may not need it)."""
    import os

    path = settings.data_dir  # absolute (Settings resolves it)
    if path.exists() and not path.is_dir():
        raise ConfigError("PLAYBOOK_SYNC_DATA_DIR", f"{path} is a file, not a folder (point it at a folder for the "
                          "embedded services, reports and logs)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError("PLAYBOOK_SYNC_DATA_DIR", f"cannot create {path}: {existing} is a file, not a folder")
    # Read, write and enter: the embedded services, reports and logs live in it or in what is created under it.
    if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        if existing == path:
            raise ConfigError("PLAYBOOK_SYNC_DATA_DIR", f"cannot use {path}: permission denied")
        raise ConfigError("PLAYBOOK_SYNC_DATA_DIR", f"cannot create {path}: no permission to write in {existing}")


def check_playbook(settings: Settings) -> None:
    """The playbook repository exists and has the branch (local); GitHub answers for the branch."""
    from playbook_sync.deps import build_repo
    from playbook_sync.providers.base import ProviderError

    if settings.playbook == "local":
        path = settings.playbook_path
        if not path.exists():
            raise ConfigError("PLAYBOOK_SYNC_REPO_PATH", f"{path} does not exist (point it at your playbook's git "
                              "checkout, or run `playbook-sync demo` for a sample one)")
        if not path.is_dir():
            raise ConfigError("PLAYBOOK_SYNC_REPO_PATH", f"{path} is not a directory")
        if not _is_git_repository(path):
            raise ConfigError("PLAYBOOK_SYNC_REPO_PATH", f"{path} is not a git repository")
    repo = build_repo(settings)
    try:
        repo.head()
    except ProviderError as exc:
        where = "PLAYBOOK_SYNC_BRANCH" if "not found" in str(exc) else "PLAYBOOK_SYNC_REPO_PATH" \
            if settings.playbook == "local" else "PLAYBOOK_SYNC_GITHUB_REPO"
        raise ConfigError(where, one_line(str(exc))) from None


def _is_git_repository(path) -> bool:
    """Whether path is a work tree or a bare repository of its own (git is not asked: it searches upward)."""
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())
