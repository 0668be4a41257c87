"""Deps and worker environments that point the real SDK providers at the fake services."""

from __future__ import annotations

from pydantic import SecretStr

from playbook_sync.config import Bands, Settings
from playbook_sync.deps import Deps, build_embedder, build_llm
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI

# The fake embeddings are the offline lexical vectors, so the offline bands fit them.
FAKE_BANDS = {"text-embedding-3-small": Bands(strong=0.35, weak=0.20),
              "text-embedding-3-large": Bands(strong=0.35, weak=0.20)}


def real_settings(settings: Settings, anthropic: FakeAnthropic | None, openai: FakeOpenAI | None, **overrides) -> Settings:
    """settings with the Anthropic LLM and/or OpenAI embedder aimed at the fakes (fast retries)."""
    update: dict = {"llm_retry_base_seconds": 0.01, "bands": settings.bands | FAKE_BANDS}
    if anthropic is not None:
        update |= {"llm": "anthropic", "anthropic_api_key": SecretStr(anthropic.api_key),
                   "anthropic_base_url": anthropic.base_url}
    if openai is not None:
        update |= {"embedder": "openai", "embedding_model": "text-embedding-3-small",
                   "openai_api_key": SecretStr(openai.api_key), "openai_base_url": openai.api_url}
    return settings.model_copy(update=update | overrides)


def real_deps(deps: Deps, anthropic: FakeAnthropic | None, openai: FakeOpenAI | None, **overrides) -> Deps:
    """The test's deps (same database and repository) on the real providers."""
    settings = real_settings(deps.settings, anthropic, openai, **overrides)
    return Deps(settings, build_embedder(settings), build_llm(settings), deps.repo)


def worker_env(anthropic: FakeAnthropic, *, batch: bool = False) -> dict[str, str]:
    """Environment for a worker subprocess using the Anthropic LLM on the fake."""
    return {"PLAYBOOK_SYNC_LLM": "anthropic", "PLAYBOOK_SYNC_ANTHROPIC_API_KEY": anthropic.api_key or "",
            "PLAYBOOK_SYNC_ANTHROPIC_BASE_URL": anthropic.base_url, "PLAYBOOK_SYNC_LLM_BATCH": str(batch).lower(),
            "PLAYBOOK_SYNC_LLM_RETRY_BASE_SECONDS": "0.01"}
