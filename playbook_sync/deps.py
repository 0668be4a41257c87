"""Build providers and sessions from settings: the pipeline's dependencies."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from playbook_sync.config import Settings
from playbook_sync.costs import Ledger
from playbook_sync.db import session_scope
from playbook_sync.errors import ConfigError
from playbook_sync.providers.base import LLM, Embedder, FromSettings, PlaybookRepo
from playbook_sync.publish import wrap_repo


def _custom(spec: str, settings: Settings, setting: str):
    """`module:Class` → an instance built from settings (for custom providers)."""
    module, _, name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(setting, f"cannot load {spec!r}: {exc}") from exc
    return cls.from_settings(settings) if isinstance(cls, FromSettings) else cls()


def _has(key) -> bool:
    return key is not None and bool(key.get_secret_value().strip())


def embedder_name(settings: Settings) -> str:
    """settings.embedder, with "auto" resolved: openai when an OpenAI key is set, else offline."""
    if settings.embedder == "auto":
        return "openai" if _has(settings.openai_api_key) else "offline"
    return settings.embedder


def llm_name(settings: Settings) -> str:
    """settings.llm, with "auto" resolved: anthropic, else openai (by key), else offline."""
    if settings.llm == "auto":
        return "anthropic" if _has(settings.anthropic_api_key) else "openai" if _has(settings.openai_api_key) else "offline"
    return settings.llm


# The default stays "offline" (not "auto"): a key exported for another tool must not make
# the demo or the tests spend money; real providers are chosen by name or by "auto".
def build_embedder(settings: Settings) -> Embedder:
    """The embedder named by settings.embedder (offline | openai | auto | module:Class)."""
    name = embedder_name(settings)
    if name == "offline":
        from playbook_sync.providers.offline import OfflineEmbedder

        return OfflineEmbedder(dimensions=settings.embedding_dimensions, max_batch=settings.embedding_batch_size)
    if name == "openai":
        from playbook_sync.providers.openai import OpenAIEmbedder

        return OpenAIEmbedder(settings)
    if ":" in name:
        return _custom(name, settings, "PLAYBOOK_SYNC_EMBEDDER")
    raise ConfigError("PLAYBOOK_SYNC_EMBEDDER", f"unknown embedder {name!r}; use offline, openai, auto or module:Class")


def check_dimensions(settings: Settings) -> None:
    """EMBEDDING_DIMENSIONS fits the database's vector columns (one size); a ConfigError naming it otherwise.

    Not a Settings bound: an embedder alone works at any size (tests use 64); only what it stores
    must match, and PostgreSQL refused any other at the first insert, as a traceback mid-run.
    """
    from playbook_sync.models import DIMENSIONS

    if settings.embedding_dimensions != DIMENSIONS:
        raise ConfigError("PLAYBOOK_SYNC_EMBEDDING_DIMENSIONS", f"must be {DIMENSIONS}, the size of the database's "
                          f"vector columns (got {settings.embedding_dimensions})")


def build_llm(settings: Settings) -> LLM:
    """The LLM named by settings.llm (offline | anthropic | openai | auto | module:Class)."""
    name = llm_name(settings)
    if settings.llm_batch and name != "anthropic" and ":" not in name:
        raise ConfigError("PLAYBOOK_SYNC_LLM_BATCH", "needs PLAYBOOK_SYNC_LLM=anthropic (Message Batches)")
    if name == "offline":
        from playbook_sync.providers.offline import OfflineLLM

        return OfflineLLM()
    if name == "anthropic":
        from playbook_sync.providers.anthropic import AnthropicLLM

        return AnthropicLLM(settings)
    if name == "openai":
        from playbook_sync.providers.openai import OpenAILLM

        return OpenAILLM(settings)
    if ":" in name:
        return _custom(name, settings, "PLAYBOOK_SYNC_LLM")
    raise ConfigError("PLAYBOOK_SYNC_LLM", f"unknown LLM provider {name!r}; use offline, anthropic, openai, auto "
                      "or module:Class")


def build_repo(settings: Settings) -> PlaybookRepo:
    """The playbook repository named by settings.playbook."""
    if settings.playbook == "local":
        from playbook_sync.providers.localgit import LocalGitRepo

        return LocalGitRepo(
            settings.playbook_path, branch=settings.branch,
            author_name=settings.commit_author_name, author_email=settings.commit_author_email,
        )
    if settings.playbook == "github":
        from playbook_sync.providers.github import GitHubRepo

        if not settings.github_repo:
            raise ConfigError("PLAYBOOK_SYNC_GITHUB_REPO", "owner/name is required when PLAYBOOK_SYNC_PLAYBOOK=github")
        token = settings.github_token.get_secret_value() if settings.github_token else None
        return GitHubRepo(
            settings.github_repo, token, branch=settings.branch, base_url=settings.github_api_url,
            author_name=settings.commit_author_name, author_email=settings.commit_author_email,
        )
    raise ConfigError("PLAYBOOK_SYNC_PLAYBOOK", f"unknown playbook {settings.playbook!r}; use local or github")


@dataclass
class Deps:
    """Everything a pipeline step needs besides its ids."""

    settings: Settings
    embedder: Embedder
    llm: LLM
    repo: PlaybookRepo

    @classmethod
    def from_settings(cls, settings: Settings) -> Deps:
        return cls(settings, build_embedder(settings), build_llm(settings), wrap_repo(build_repo(settings), settings))

    @property
    def ledger(self) -> Ledger:
        """Prices and sessions for costs.metered (a dry run's sessions join its one transaction)."""
        return Ledger(self.settings.prices, self.session)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction on the configured database."""
        if not self.settings.database_url:
            raise RuntimeError("PLAYBOOK_SYNC_DATABASE_URL is not set (the CLI sets it for the embedded profile)")
        with session_scope(self.settings.database_url) as session:
            yield session
