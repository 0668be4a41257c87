"""Build providers and sessions from settings: the pipeline's dependencies."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from playbook_sync.config import Settings
from playbook_sync.db import session_scope
from playbook_sync.providers.base import LLM, Embedder, PlaybookRepo


def _custom(spec: str, settings: Settings):
    """`module:Class` → an instance built from settings (for custom providers)."""
    module, _, name = spec.partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.from_settings(settings) if hasattr(cls, "from_settings") else cls()


def build_embedder(settings: Settings) -> Embedder:
    """The embedder named by settings.embedder."""
    if settings.embedder == "offline":
        from playbook_sync.providers.offline import OfflineEmbedder

        return OfflineEmbedder(dimensions=settings.embedding_dimensions, max_batch=settings.embedding_batch_size)
    if ":" in settings.embedder:
        return _custom(settings.embedder, settings)
    raise ValueError(f"unknown embedder {settings.embedder!r}; set PLAYBOOK_SYNC_EMBEDDER to offline or module:Class")


def build_llm(settings: Settings) -> LLM:
    """The LLM named by settings.llm."""
    if settings.llm == "offline":
        from playbook_sync.providers.offline import OfflineLLM

        return OfflineLLM()
    if ":" in settings.llm:
        return _custom(settings.llm, settings)
    raise ValueError(f"unknown LLM provider {settings.llm!r}; set PLAYBOOK_SYNC_LLM to offline or module:Class")


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
            raise ValueError("PLAYBOOK_SYNC_GITHUB_REPO (owner/name) is required when PLAYBOOK_SYNC_PLAYBOOK=github")
        token = settings.github_token.get_secret_value() if settings.github_token else None
        return GitHubRepo(
            settings.github_repo, token, branch=settings.branch, base_url=settings.github_api_url,
            author_name=settings.commit_author_name, author_email=settings.commit_author_email,
        )
    raise ValueError(f"unknown playbook {settings.playbook!r}; set PLAYBOOK_SYNC_PLAYBOOK to local or github")


@dataclass
class Deps:
    """Everything a pipeline step needs besides its ids."""

    settings: Settings
    embedder: Embedder
    llm: LLM
    repo: PlaybookRepo

    @classmethod
    def from_settings(cls, settings: Settings) -> "Deps":
        return cls(settings, build_embedder(settings), build_llm(settings), build_repo(settings))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction on the configured database."""
        if not self.settings.database_url:
            raise RuntimeError("PLAYBOOK_SYNC_DATABASE_URL is not set (the CLI sets it for the embedded profile)")
        with session_scope(self.settings.database_url) as session:
            yield session
