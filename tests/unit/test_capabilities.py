"""The optional capabilities are runtime_checkable protocols: each provider has exactly the ones
the pipeline should use (a renamed method would silently switch a capability off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbook_sync.config import Settings
from playbook_sync.deps import _custom
from playbook_sync.dryrun import DryRunRepo
from playbook_sync.providers.anthropic import AnthropicLLM
from playbook_sync.providers.base import (
    LLM,
    BatchClassifier,
    BranchingRepo,
    CheckedOut,
    CommitParents,
    Embedder,
    FileReader,
    FromSettings,
    PathHistory,
    PlaybookRepo,
    TokenBudget,
)
from playbook_sync.providers.github import GitHubRepo
from playbook_sync.providers.localgit import init_repo
from playbook_sync.providers.offline import OfflineEmbedder, OfflineLLM
from playbook_sync.providers.openai import OpenAIEmbedder, OpenAILLM
from playbook_sync.publish import PullRequestRepo, wrap_repo

pytestmark = pytest.mark.unit

REPO_CAPABILITIES = (FileReader, CommitParents, PathHistory, CheckedOut, BranchingRepo)


def settings(**values) -> Settings:
    return Settings(_env_file=None, anthropic_api_key="sk-ant-test-0000", openai_api_key="sk-test-0000", **values)


def has(obj, capabilities) -> set[str]:
    return {c.__name__ for c in capabilities if isinstance(obj, c)}


def test_llms_and_embedders_have_exactly_their_capabilities() -> None:
    s = settings()
    anthropic, openai, offline = AnthropicLLM(s), OpenAILLM(s), OfflineLLM()
    assert all(isinstance(llm, LLM) for llm in (anthropic, openai, offline))
    assert [isinstance(llm, BatchClassifier) for llm in (anthropic, openai, offline)] == [True, False, False]
    embedders = (OpenAIEmbedder(s), OfflineEmbedder(dimensions=64, max_batch=8))
    assert all(isinstance(e, Embedder) for e in embedders)
    assert [isinstance(e, TokenBudget) for e in embedders] == [True, False]


def test_repositories_have_exactly_their_capabilities(tmp_path: Path) -> None:
    local = init_repo(tmp_path / "pb", {"docs/a.md": b"# A\n"})
    github = GitHubRepo("acme/playbook", None, base_url="http://127.0.0.1:9")  # lazy: no request made
    for repo in (local, github):
        assert isinstance(repo, PlaybookRepo)
    assert has(local, REPO_CAPABILITIES) == {"FileReader", "CommitParents", "PathHistory", "CheckedOut"}
    assert has(github, REPO_CAPABILITIES) == {"FileReader", "CommitParents", "BranchingRepo"}
    review = PullRequestRepo(github, "playbook-sync/updates")
    assert isinstance(review, PlaybookRepo) and has(review, REPO_CAPABILITIES) == {"FileReader", "CommitParents"}
    assert has(DryRunRepo(local), REPO_CAPABILITIES) == {"FileReader", "CommitParents", "PathHistory"}


def test_pull_request_mode_needs_a_branching_repository(tmp_path: Path) -> None:
    pr = settings(publish="pull_request")
    github = GitHubRepo("acme/playbook", None, base_url="http://127.0.0.1:9")
    assert isinstance(wrap_repo(github, pr), PullRequestRepo)
    with pytest.raises(ValueError, match="PLAYBOOK_SYNC_PUBLISH=pull_request needs a GitHub playbook"):
        wrap_repo(init_repo(tmp_path / "pb", {"docs/a.md": b"# A\n"}), pr)


class Plain:
    """A custom provider without from_settings."""


def test_custom_providers_are_built_with_from_settings_when_they_have_it() -> None:
    s = settings()
    assert isinstance(AnthropicLLM, FromSettings) and not isinstance(Plain, FromSettings)
    assert isinstance(_custom("playbook_sync.providers.anthropic:AnthropicLLM", s, "PLAYBOOK_SYNC_LLM"), AnthropicLLM)
    assert isinstance(_custom(f"{__name__}:Plain", s, "PLAYBOOK_SYNC_LLM"), Plain)
