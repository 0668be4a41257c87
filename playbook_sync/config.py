"""Settings (env prefix PLAYBOOK_SYNC_); nothing here connects to anything."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
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


class Settings(BaseSettings):
    """All configuration; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="PLAYBOOK_SYNC_", env_file=".env", extra="ignore")

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

    def bands_for(self, model: str | None = None) -> Bands:
        """Bands for an embedding model, falling back to the spec's defaults."""
        return self.bands.get(model or self.embedding_model, Bands())

    @property
    def playbook_path(self) -> Path:
        """The local playbook repository path."""
        return self.repo_path or self.data_dir / "playbook"


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
