"""Settings (env prefix PLAYBOOK_SYNC_); nothing here connects to anything."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFLINE_EMBEDDING_MODEL = "offline-lexical-v1"
# The .env file the CLI read, handed to its worker: a worker runs in the project's directory,
# where "./.env" would be a different file (or none) than the one in the user's directory.
ENV_FILE_VARIABLE = "PLAYBOOK_SYNC_ENV_FILE"


class Bands(BaseModel):
    """Similarity bands for one embedding model: >= strong, >= weak, else no match."""

    model_config = ConfigDict(extra="forbid")  # a typo ("stong") must not silently keep a default

    strong: float = 0.75
    weak: float = 0.60

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        # Similarities are cosines in (0, 1]; a weak band above strong, or 75 for 0.75,
        # would turn every entry into an orphan without a word.
        if not 0 < self.weak <= self.strong <= 1:
            raise ValueError(f"need 0 < weak <= strong <= 1 (got strong={self.strong}, weak={self.weak})")
        return self


# Similarity scales differ between embedding models, so bands are per model. The offline lexical embedder scores
# related short-vs-long texts lower than text-embedding-3-small does; its bands were read off the demo's histogram.
DEFAULT_BANDS: dict[str, Bands] = {
    "text-embedding-3-small": Bands(strong=0.75, weak=0.60),
    OFFLINE_EMBEDDING_MODEL: Bands(strong=0.35, weak=0.20),
}


Dollars = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # else every cost figure and budget check is nonsense


class Price(BaseModel):
    """US dollars per million tokens for one model; cache prices default to Anthropic's ratios."""

    input: Dollars
    output: Dollars = 0.0
    cache_write: Dollars | None = None  # default 1.25 x input (5-minute cache write)
    cache_read: Dollars | None = None  # default 0.1 x input


# List prices when written; PLAYBOOK_SYNC_PRICES='{"model": {"input": .., ..}}' overrides; batch is half (costs.py).
DEFAULT_PRICES: dict[str, Price] = {
    "claude-opus-4-6": Price(input=5.0, output=25.0, cache_write=6.25, cache_read=0.50),
    "claude-sonnet-4-6": Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.10),
    "gpt-5": Price(input=1.25, output=10.0, cache_write=1.25, cache_read=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.0, cache_write=0.25, cache_read=0.025),
    "text-embedding-3-small": Price(input=0.02),
    "text-embedding-3-large": Price(input=0.13),
}


# Numeric settings a user can mistype, with the range that works: (lowest, highest, lowest excluded).
# Out of range they fail at start with one line, not halfway through a run.
_BOUNDS: dict[str, tuple[float, float | None, bool]] = {
    "top_k": (1, None, False),
    "max_enrichments_per_sop": (1, None, False),
    "cluster_min_entries": (2, None, False),
    "cluster_min_sources": (1, None, False),
    "cluster_similarity": (0, 1, True),
    "min_callout_confidence": (0, 1, False),
    "llm_concurrency": (1, None, False),
    "embedding_batch_size": (1, 2048, False),  # the Embeddings API's limit per request
    "embedding_batch_tokens": (1, None, False),
    "embedding_max_input_tokens": (1, None, False),
    "embedding_dimensions": (8, None, False),  # the offline embedder hashes features into at least 8 buckets
    "llm_max_tokens": (1, None, False),
    "llm_timeout_seconds": (0, None, True),
    "llm_max_retries": (0, None, False),
    "llm_retry_base_seconds": (0, None, False),
    "llm_retry_max_seconds": (0, None, False),
    "llm_output_retries": (0, None, False),
    "batch_poll_seconds": (1, None, False),
    "task_max_retries": (0, None, False),
    "task_retry_backoff": (0, None, False),
    "schedule_expires_seconds": (1, None, False),
    "visibility_timeout": (1, None, False),
    "run_deadline_seconds": (1, None, False), "watchdog_interval_seconds": (1, None, False), "job_deadline_seconds": (1, None, False),
}
PLAYBOOKS = ("local", "github")
EMBEDDERS = ("offline", "openai", "auto")
LLMS = ("offline", "anthropic", "openai", "auto")


def _check_bounds(name: str, value: float) -> None:
    low, high, exclusive = _BOUNDS[name]
    too_low = value <= low if exclusive else value < low
    # Not finite: NaN compares false with everything, and inf passes "above 0" but is no timeout or wait a
    # client or Celery can use (a float setting typed as "inf" or "nan" is a typo, not a choice).
    if too_low or (high is not None and value > high) or not math.isfinite(value):
        lowest = f"above {low:g}" if exclusive else f"at least {low:g}"
        highest = f" and at most {high:g}" if high is not None else " and finite" if not math.isfinite(value) else ""
        raise ValueError(f"must be {lowest}{highest} (got {value:g})")


def _check_docs_root(value: str) -> str:
    root = value.strip().rstrip("/")
    parts = root.split("/")
    # The docs root is joined onto the repository path and matched against tree paths:
    # it must name a folder inside the repository, nothing above or beside it.
    if (not root or root.startswith("/") or "\\" in root or any(p in ("", ".", "..") for p in parts)
            or parts[0].lower() == ".git" or any(ord(c) < 0x20 or c == "\x7f" for c in root)):
        raise ValueError(f"must be a folder inside the playbook repository, such as docs (got {value!r})")
    return root


def _check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"needs five fields: minute hour day-of-month month day-of-week (got {value!r})")
    # Celery's own parser, the one beat builds the schedule with (worker/schedule.py): a cron it would
    # refuse (99 minutes, Feb 31) is refused here, at start, not when beat starts days later. Lazy: only
    # a configured cron pays for importing it, and the domain otherwise stays free of Celery.
    from celery.schedules import ParseException, crontab

    minute, hour, day_of_month, month, day_of_week = fields
    try:
        crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week)
    except (ValueError, ParseException) as exc:
        raise ValueError(f"not a schedule Celery beat accepts: {str(exc).rstrip('.')} (got {value!r})") from None
    return value


def _check_rate_limit(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None  # empty: no rate limit, as when unset
    # Celery's own parser (what the worker applies to Task.rate_limit); it takes "fast" or "60/x"
    # only when the worker builds its token buckets, so a typo would surface in a worker log, if at all.
    from celery.utils.time import rate

    try:
        per_second = rate(value.strip())
    except (ValueError, KeyError):
        per_second = None
    if per_second is None or not math.isfinite(per_second) or per_second < 0:
        raise ValueError(f"not a rate limit: use tasks per second, minute or hour, such as 10/s, 60/m or 100/h "
                         f"(got {value!r})")
    return value.strip()


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
    # A 4 MB SOP took 42 s and 1.5 GB to parse and embed; a file this big is not an SOP a person reads.
    max_sop_bytes: int = 1 << 20
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
    # LLM calls the chord callback makes at once, for the edits and, beside them, for the new-SOP drafts; 1 = one
    # after another. As many as an LLM worker's threads (docker-compose.yml: 32) have in flight during the fan-out.
    llm_concurrency: int = 32
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
    # Entries of an (SOP, category) whose callouts editors keep declining are held for review below this
    # (confidence.py: a new pair starts at 0.1; about six declines in a row, none kept, go below 0.05).
    min_callout_confidence: float = 0.05

    # Tasks and schedule.
    task_max_retries: int = 3
    task_retry_backoff: float = 2.0
    schedule_cron: str = "0 0 * * 0"  # minute hour day-of-month month day-of-week (UTC)
    schedule_expires_seconds: int = 6 * 3600
    # Redis re-delivers an unacknowledged message after this long; it must exceed the
    # longest task, or a slow task would run twice (harmless here, but wasted calls).
    visibility_timeout: int = 6 * 3600
    # The watchdog fails runs still 'running' after this long (window stays put): above a Message Batch's 24 h, below a week.
    run_deadline_seconds: int = 26 * 3600
    watchdog_interval_seconds: int = 15 * 60
    job_deadline_seconds: int = 3600  # a builder job silent this long lost its worker or its message (a generation takes minutes)

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
    # Task events cost the worker and Redis ~1 ms of CPU per task (three publishes each); Flower turns
    # them on in the workers it watches (enable_events), so nobody pays for them unwatched.
    task_events: bool = False
    # The playbook's own Docusaurus build on the changed tree before each commit (opt-in; needs Node).
    build_gate: bool = False
    build_timeout_seconds: int = 900
    build_cache_dir: Path | None = None  # node_modules per package.json; default data_dir/site-build

    # The HTTP API and pages (`playbook-sync serve`).
    api_token: SecretStr | None = None  # operator bearer token; without it the server binds to 127.0.0.1 only
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_max_body_bytes: int = Field(default=2 << 20, ge=1024)  # larger request bodies get 413 before a route reads them

    # Outcome evidence from execution reports (evidence.py, outcome_callouts.py).
    evidence_period_days: int = Field(default=90, ge=1, le=3660)
    evidence_min_change: float = Field(default=0.1, ge=0.0, le=10.0)
    # playbook id → SOP ids (frontmatter `id`) or paths, besides SOP frontmatter `playbook_ids`.
    playbook_sops: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("data_dir", "repo_path", "reports_dir", "prompts_dir", mode="after")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        # Resolved once, against the directory the user ran the command in; the worker gets
        # these absolute paths (worker_env), so both see the same repository and data.
        return None if path is None else Path(os.path.abspath(path.expanduser()))

    def worker_env(self) -> dict[str, str]:
        """This process's resolved paths and .env file, for a worker it starts (absolute, so any cwd agrees)."""
        env = {"PLAYBOOK_SYNC_DATA_DIR": str(self.data_dir), "PLAYBOOK_SYNC_REPO_PATH": str(self.playbook_path),
               "PLAYBOOK_SYNC_REPORTS_DIR": str(self.report_path), ENV_FILE_VARIABLE: str(env_file())}
        if self.prompts_dir is not None:
            env["PLAYBOOK_SYNC_PROMPTS_DIR"] = str(self.prompts_dir)
        return env

    @field_validator("prices", mode="after")
    @classmethod
    def _merge_prices(cls, prices: dict[str, Price]) -> dict[str, Price]:
        # PLAYBOOK_SYNC_PRICES overrides or adds models; the other list prices stay.
        return DEFAULT_PRICES | prices

    @field_validator("bands", mode="before")
    @classmethod
    def _bands_over_defaults(cls, bands: object) -> object:
        if not isinstance(bands, dict):
            return bands
        if bands and set(bands) <= {"strong", "weak"}:
            raise ValueError('BANDS maps an embedding model to its bands, e.g. '
                             '{"text-embedding-3-small": {"strong": 0.75, "weak": 0.60}}')
        # A partial override ({"model": {"strong": 0.8}}) keeps that model's other default.
        return {model: DEFAULT_BANDS[model].model_dump() | value if model in DEFAULT_BANDS and isinstance(value, dict)
                else value for model, value in bands.items()}

    @field_validator("bands", mode="after")
    @classmethod
    def _merge_bands(cls, bands: dict[str, Bands]) -> dict[str, Bands]:
        # Like PRICES: PLAYBOOK_SYNC_BANDS overrides or adds models; the built-in bands stay.
        return DEFAULT_BANDS | bands

    @field_validator(*_BOUNDS, mode="after")
    @classmethod
    def _in_bounds(cls, value: float, info) -> float:
        _check_bounds(info.field_name, value)
        return value

    @field_validator("docs_root", mode="after")
    @classmethod
    def _docs_root(cls, value: str) -> str:
        return _check_docs_root(value)

    @field_validator("playbook", mode="after")
    @classmethod
    def _playbook_name(cls, value: str) -> str:
        if value not in PLAYBOOKS:
            raise ValueError(f"unknown playbook {value!r}; use local or github")
        return value

    @field_validator("embedder", "llm", mode="after")
    @classmethod
    def _provider_name(cls, value: str, info) -> str:
        known = EMBEDDERS if info.field_name == "embedder" else LLMS
        module, _, name = value.partition(":")
        if value not in known and not (module and name):
            raise ValueError(f"unknown provider {value!r}; use {', '.join(known)} or module:Class")
        return value

    @field_validator("schedule_cron", mode="after")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @field_validator("llm_rate_limit", mode="after")
    @classmethod
    def _rate_limit(cls, value: str | None) -> str | None:
        return _check_rate_limit(value)

    @field_validator("database_url", "broker_url", "result_backend", mode="after")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        # Empty selects the embedded service; anything else must at least look like a URL
        # (the value is not echoed: it may carry a password).
        if value is not None and value.strip() and "://" not in value:
            raise ValueError("not a URL (expected scheme://host:port/...; leave it empty for the embedded service)")
        return value.strip() or None if value is not None else None

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_driver(cls, value: str | None) -> str | None:
        # A plain postgresql:// (or Heroku-style postgres://) URL means the driver we ship;
        # SQLAlchemy would pick another (psycopg 3) and fail on a missing module.
        for scheme in ("postgresql://", "postgres://"):
            if value and value.startswith(scheme):
                return "postgresql+psycopg2://" + value.removeprefix(scheme)
        return value

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


def env_file() -> Path:
    """The .env file settings are read from: PLAYBOOK_SYNC_ENV_FILE, else .env in the current directory."""
    return Path(os.path.abspath(os.environ.get(ENV_FILE_VARIABLE) or ".env"))


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment (and env_file())."""
    return Settings(_env_file=env_file())
