"""Settings (env prefix PLAYBOOK_SYNC_); nothing here connects to anything."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFLINE_EMBEDDING_MODEL = "offline-lexical-v1"


class Bands(BaseModel):
    """Similarity bands for one embedding model: >= strong, >= weak, else no match."""

    strong: float = 0.75
    weak: float = 0.60


# Similarity scales differ between embedding models, so bands are per model.
# The offline lexical embedder scores related short-vs-long texts lower than
# text-embedding-3-small does; its bands were read off the demo's score histogram.
DEFAULT_BANDS: dict[str, Bands] = {
    "text-embedding-3-small": Bands(strong=0.75, weak=0.60),
    OFFLINE_EMBEDDING_MODEL: Bands(strong=0.35, weak=0.20),
}


class Price(BaseModel):
    """US dollars per million tokens for one model; cache prices default to Anthropic's ratios."""

    input: float
    output: float = 0.0
    cache_write: float | None = None  # default 1.25 x input (5-minute cache write)
    cache_read: float | None = None  # default 0.1 x input


# List prices when written; override with PLAYBOOK_SYNC_PRICES='{"model": {"input": .., "output": ..}}'.
# Batch calls are billed at half of these (BATCH_DISCOUNT in costs.py).
DEFAULT_PRICES: dict[str, Price] = {
    "claude-opus-4-6": Price(input=5.0, output=25.0, cache_write=6.25, cache_read=0.50),
    "claude-sonnet-4-6": Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.10),
    "gpt-5": Price(input=1.25, output=10.0, cache_write=1.25, cache_read=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.0, cache_write=0.25, cache_read=0.025),
    "text-embedding-3-small": Price(input=0.02),
    "text-embedding-3-large": Price(input=0.13),
}


def _secret(name: str) -> AliasChoices:
    """Our prefixed variable first, then the provider's conventional one (e.g. ANTHROPIC_API_KEY)."""
    # Env names are matched case-insensitively, so the bare field name doubles as the
    # conventional variable and still lets Settings(anthropic_api_key=...) work.
    return AliasChoices(f"PLAYBOOK_SYNC_{name.upper()}", name)


class Settings(BaseSettings):
    """All configuration; see the README's configuration table."""

    # PLAYBOOK_SYNC_ENV_FILE names the dotenv file (default ./.env); the test suite points it at
    # os.devnull, so a stray ./.env where the tests or their workers run cannot change a test.
    model_config = SettingsConfigDict(env_prefix="PLAYBOOK_SYNC_", extra="ignore",
                                      env_file=os.environ.get("PLAYBOOK_SYNC_ENV_FILE") or ".env")

    # Services. Empty URLs select the embedded local profile.
    database_url: str | None = None
    broker_url: str | None = None
    result_backend: str | None = None
    data_dir: Path = Path(".playbook-sync")

    # Playbook repository.
    playbook: str = "local"  # local | github
    repo_path: Path | None = None  # local git repository (defaults to data_dir/playbook)
    github_repo: str | None = None  # owner/name
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    branch: str = "main"
    docs_root: str = "docs"
    commit_author_name: str = "playbook-sync"
    commit_author_email: str = "playbook-sync@users.noreply.github.com"

    # Providers: a short name or "module:Class" for a custom implementation.
    embedder: str = "offline"
    llm: str = "offline"
    embedding_model: str = OFFLINE_EMBEDDING_MODEL
    embedding_dimensions: int = 1536
    embedding_batch_size: int = 2048
    # OpenAI embeddings: per-request token budget and per-input limit (longer inputs are truncated).
    embedding_batch_tokens: int = 300_000
    embedding_max_input_tokens: int = 8191

    # Real providers (PLAYBOOK_SYNC_LLM=anthropic|openai, PLAYBOOK_SYNC_EMBEDDER=openai; "auto"
    # picks the real provider whose key is set, else offline). Keys are secrets: never logged.
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias=_secret("anthropic_api_key"))
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_secret("openai_api_key"))
    anthropic_base_url: str | None = None  # None: the SDK's default endpoint
    openai_base_url: str | None = None
    # Models per step; None picks the provider's default (Anthropic: Opus for judgment, Sonnet
    # for cluster names; OpenAI: gpt-5 / gpt-5-mini).
    model_classify: str | None = None
    model_edit: str | None = None
    model_new_sop: str | None = None
    model_cluster: str | None = None
    llm_max_tokens: int = 4096  # a cap (billing is per token used); reasoning models need headroom
    llm_timeout_seconds: float = 120.0
    llm_max_retries: int = 4  # 429/5xx/timeout/connection retries per call (ours; the SDKs' are off)
    llm_retry_base_seconds: float = 1.0
    llm_retry_max_seconds: float = 60.0  # longest single wait, incl. a server's retry-after
    llm_output_retries: int = 1  # re-asks when an answer breaks the schema
    # LLM calls the chord callback makes at once (edits, new-SOP drafts); 1 = one after another.
    llm_concurrency: int = 16
    llm_batch: bool = False  # classify a run's entries in one Anthropic Message Batch (half price)
    batch_poll_seconds: int = 300
    prompts_dir: Path | None = None  # default: prompts/ of the project
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    # Matching and edits.
    bands: dict[str, Bands] = Field(default_factory=lambda: dict(DEFAULT_BANDS))
    top_k: int = 3
    max_enrichments_per_sop: int = 4
    cluster_min_entries: int = 3
    cluster_min_sources: int = 2
    cluster_similarity: float = 0.30

    # Tasks and schedule.
    task_max_retries: int = 3
    task_retry_backoff: float = 2.0
    schedule_cron: str = "0 0 * * 0"  # minute hour day-of-month month day-of-week (UTC)
    schedule_expires_seconds: int = 6 * 3600
    # Redis re-delivers an unacknowledged message after this long; it must exceed the
    # longest task, or a slow task would run twice (harmless here, but wasted calls).
    visibility_timeout: int = 6 * 3600
    # The watchdog fails runs still 'running' after this long (the window stays put);
    # above the 24 h an Anthropic Message Batch may take, below the weekly period.
    run_deadline_seconds: int = 26 * 3600
    watchdog_interval_seconds: int = 15 * 60

    # Operating it: publishing, reports, queues, logs, monitoring (README "Operations").
    publish: Literal["commit", "pull_request"] = "commit"  # direct commit, or a review branch + pull request
    pull_request_branch: str = "playbook-sync/updates"
    deploy_webhook_url: SecretStr | None = None  # POSTed after a commit lands; the URL is a secret
    reports_dir: Path | None = None  # run reports (HTML + JSON); default data_dir/reports
    queue: str = "playbook_sync"  # start_run and other light tasks
    llm_queue: str = "playbook_sync.llm"  # LLM-bound tasks: their own workers and rate limit
    llm_rate_limit: str | None = None  # Celery rate limit per worker for process_entry, e.g. "60/m"
    log_format: Literal["json", "text"] = "json"  # worker logs; every line carries run_id/entry_id
    flower_basic_auth: SecretStr | None = None  # user:password for Flower (off on 127.0.0.1 when unset)

    @field_validator("prices", mode="after")
    @classmethod
    def _merge_prices(cls, prices: dict[str, Price]) -> dict[str, Price]:
        # PLAYBOOK_SYNC_PRICES overrides or adds models; the other list prices stay.
        return DEFAULT_PRICES | prices

    def bands_for(self, model: str | None = None) -> Bands:
        """Bands for an embedding model, falling back to the spec's defaults."""
        return self.bands.get(model or self.embedding_model, Bands())

    @property
    def playbook_path(self) -> Path:
        """The local playbook repository path."""
        return self.repo_path or self.data_dir / "playbook"

    @property
    def report_path(self) -> Path:
        """Where run reports are written."""
        return self.reports_dir or self.data_dir / "reports"


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
