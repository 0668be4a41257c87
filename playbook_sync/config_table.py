"""The README's configuration table, generated from Settings: `python -m playbook_sync.config_table [--write README.md]`.

Descriptions live here rather than in config.py so the table's prose does not crowd the
settings; a field without a description is an error, so a new setting cannot reach the
README (or a release) undocumented. tests/unit/test_config_table.py fails when README drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import SecretStr

from playbook_sync.config import Settings

START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"

# field → (shown default, or None to show the field's own default; meaning)
DESCRIPTIONS: dict[str, tuple[str | None, str]] = {
    "database_url": ("*(embedded)*", "SQLAlchemy URL of PostgreSQL with pgvector; empty starts an embedded server under `DATA_DIR/pg`"),
    "broker_url": ("*(embedded)*", "Redis URL of the Celery broker; empty starts an embedded Redis (Valkey)"),
    "result_backend": ("broker URL", "Celery result backend"),
    "data_dir": (None, "where the embedded services, the demo repository, reports and the build cache live; relative "
                 "paths (`DATA_DIR`, `REPO_PATH`, `REPORTS_DIR`, `PROMPTS_DIR`) are resolved once against the directory "
                 "you run the command in, and the local worker gets the same absolute paths and the same `.env`"),
    "playbook": (None, "`local` (a git repository at `REPO_PATH`) or `github`"),
    "repo_path": ("`DATA_DIR/playbook`", "the local playbook repository: exactly its top level (or a bare repository); "
                  "a directory inside another repository is refused, git never searches upward"),
    "github_repo": (None, "GitHub repository `owner/name`"),
    "github_token": (None, "fine-grained token with contents:write (and pull requests:write for `PUBLISH=pull_request`); a secret"),
    "github_api_url": (None, "GitHub API endpoint (GitHub Enterprise, or a fake in tests)"),
    "branch": (None, "branch the run commits to"),
    "docs_root": (None, "where the SOPs live (relative to the repository, no `..`); a docs root without SOPs fails the run"),
    "max_sop_bytes": (None, "SOP files larger than this (1 MiB) are skipped with a reason in the run log and by `validate`, "
                      "not parsed or embedded"),
    "commit_author_name": (None, "author of the run's commit"),
    "commit_author_email": (None, "author e-mail of the run's commit"),
    "embedder": (None, "`offline` (deterministic, no network), `openai`, `auto` (OpenAI when its key is set) or `module:Class`"),
    "llm": (None, "`offline`, `anthropic`, `openai`, `auto` (the real provider whose key is set) or `module:Class`"),
    "embedding_model": (None, "the embedding model id (cache key); with `EMBEDDER=openai` the offline default means `text-embedding-3-small`"),
    "embedding_dimensions": (None, "vector size, sent as `dimensions` to OpenAI (the database column is 1536)"),
    "embedding_batch_size": (None, "inputs per embedding request"),
    "embedding_batch_tokens": (None, "tokens per embedding request (counted with tiktoken)"),
    "embedding_max_input_tokens": (None, "longer inputs are truncated, with a warning in the run log"),
    "anthropic_api_key": (None, "Anthropic key (a secret, never logged); the unprefixed `ANTHROPIC_API_KEY` is read too"),
    "openai_api_key": (None, "OpenAI key (a secret, never logged); the unprefixed `OPENAI_API_KEY` is read too"),
    "anthropic_base_url": ("SDK default", "Anthropic API endpoint (a proxy, or a fake in tests)"),
    "openai_base_url": ("SDK default", "OpenAI API endpoint"),
    "model_classify": ("`claude-opus-4-6` (`gpt-5` on OpenAI)", "classification: the strongest model"),
    "model_edit": ("`claude-opus-4-6` (`gpt-5`)", "callout writing"),
    "model_new_sop": ("`claude-opus-4-6` (`gpt-5`)", "new-SOP drafts"),
    "model_cluster": ("`claude-sonnet-4-6` (`gpt-5-mini`)", "orphan cluster naming: a cheaper model"),
    "llm_max_tokens": (None, "output cap per call (reasoning models on OpenAI spend part of it thinking)"),
    "llm_timeout_seconds": (None, "per call"),
    "llm_max_retries": (None, "retries of 429 (waiting `retry-after`), 5xx, timeouts and connection errors"),
    "llm_retry_base_seconds": (None, "first backoff, doubled per retry, with jitter"),
    "llm_retry_max_seconds": (None, "longest single wait; a longer `retry-after` is not waited for"),
    "llm_output_retries": (None, "re-asks (with the error) when an answer breaks its schema"),
    "llm_concurrency": (None, "model calls the run's callback makes at once (edits, new-SOP drafts); `1`: one after another"),
    "llm_batch": (None, "classify a run's entries in one Anthropic Message Batch (half price)"),
    "batch_poll_seconds": (None, "how often beat polls a submitted Message Batch"),
    "prompts_dir": ("`playbook_sync/prompt_templates/`", "one prompt file per step (shipped in the package)"),
    "prices": ("list prices", 'JSON, USD per million tokens, merged over the built-in table: `{"model": {"input": 5, "output": 25}}`; batch calls cost half'),
    "bands": ("calibrated", "unset: each run calibrates its bands on the playbook's own null distribution "
              '(`playbook-sync calibrate`); set, e.g. `{"text-embedding-3-small": {"strong": 0.75, "weak": 0.60}}`, '
              "to pin absolute bands per model; needs `0 < weak <= strong <= 1`"),
    "top_k": (None, "candidate SOPs per entry"),
    "max_enrichments_per_sop": (None, "per run; the rest are deferred to the next run"),
    "cluster_min_entries": (None, "orphans needed for a new SOP"),
    "min_callout_confidence": (None, "below this (SOP, category) confidence an entry is held for review, not written"),
    "cluster_min_sources": (None, "distinct sources needed for a new SOP"),
    "cluster_similarity": (None, "how close an orphan must be to a cluster to join it"),
    "task_max_retries": (None, "per-entry task retries once a provider call has used up its own `LLM_MAX_RETRIES`: a "
                         "blip is retried in the call, an outage of minutes by the task"),
    "task_retry_backoff": (None, "seconds, exponential and jittered"),
    "schedule_cron": (None, "beat schedule (UTC): minute hour day-of-month month day-of-week"),
    "schedule_expires_seconds": (None, "a scheduled run not started within this time is dropped"),
    "visibility_timeout": (None, "Redis re-delivers an unacknowledged task after this long; above the longest task"),
    "run_deadline_seconds": (None, "the watchdog fails a run still running after this long"),
    "watchdog_interval_seconds": (None, "how often beat starts the watchdog"),
    "job_deadline_seconds": (None, "the watchdog (and `serve`, on the embedded profile) fails a Playbook Builder job "
                             "queued or running without progress for this long; the page shows why, generate again to retry"),
    "publish": (None, "`commit` (straight onto `BRANCH`) or `pull_request` (a review branch and a pull request; GitHub only)"),
    "pull_request_branch": (None, "the review branch of `pull_request` mode"),
    "deploy_webhook_url": (None, "POSTed (JSON) after a commit lands; a secret; a failure is logged, never fails the run"),
    "reports_dir": ("`DATA_DIR/reports`", "run reports, `run-<id>.html` and `run-<id>.json`"),
    "queue": (None, "Celery queue of the light tasks (`start_run`, watchdog)"),
    "llm_queue": (None, "Celery queue of the LLM-bound tasks (`process_entry`, `finalize_run`)"),
    "llm_rate_limit": (None, "Celery rate limit of `process_entry` per worker, e.g. `120/m`"),
    "log_format": (None, "worker logs: `json` (one object per line) or `text`; both carry `run_id`, `entry_id`, `task_id`"),
    "task_events": (None, "workers send task events from the start; off, Flower (`playbook-sync flower`) turns them on "
                    "in the workers it watches, and they stay on until those workers restart"),
    "flower_basic_auth": (None, "`user:password` for Flower, passed in its environment (without it, Flower answers only on 127.0.0.1)"),
    "api_token": (None, "bearer token of the operator for the HTTP API (`playbook-sync serve`); without it the server "
                  "listens on 127.0.0.1 only and says so; a secret"),
    "api_host": (None, "address `serve` binds to (anything but loopback needs `API_TOKEN`)"),
    "api_port": (None, "port `serve` listens on"),
    "api_max_body_bytes": (None, "request bodies larger than this (2 MiB) get 413 before any route reads them"),
    "evidence_period_days": (None, "outcome evidence per SOP covers execution reports completed in this many days (90: this quarter)"),
    "evidence_min_change": (None, "a new `Results From the Field` callout needs a metric's median delta to move by this fraction "
                            "(or a new metric, or a quarter more executions)"),
    "playbook_sops": ("`{}`", 'JSON, playbook id → SOP ids or paths whose evidence its reports feed, besides SOP frontmatter '
                      '`playbook_ids: [...]`: `{"voc-sprint": ["sop-4-2-run-a-voc-sprint"]}`'),
    "build_gate": (None, "run the playbook's own Docusaurus build on the changed tree before each commit; pages it fails on are deferred"),
    "build_timeout_seconds": (None, "limit of one `npm install` or site build"),
    "build_cache_dir": ("`DATA_DIR/site-build`", "node_modules per `package.json`, reused across builds"),
}


def _default(name: str) -> str:
    value = Settings.model_fields[name].get_default(call_default_factory=True)
    if value is None or isinstance(value, SecretStr):
        return "–"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def table() -> str:
    """The Markdown table, one row per setting, in Settings order."""
    missing = [name for name in Settings.model_fields if name not in DESCRIPTIONS]
    if missing:
        raise KeyError(f"settings without a description in playbook_sync/config_table.py: {', '.join(missing)}")
    stale = [name for name in DESCRIPTIONS if name not in Settings.model_fields]
    if stale:
        raise KeyError(f"descriptions of settings that no longer exist: {', '.join(stale)}")
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name in Settings.model_fields:
        shown, meaning = DESCRIPTIONS[name]
        rows.append(f"| `{name.upper()}` | {shown or _default(name)} | {meaning} |")
    return "\n".join(rows) + "\n"


def replace(text: str) -> str:
    """text with the block between the markers replaced by the current table."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"the markers {START} … {END} are missing")
    return f"{head}{START}\n{table()}{END}{tail}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"] and len(argv) == 2:
        path = Path(argv[1])
        path.write_text(replace(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m playbook_sync.config_table [--write README.md]", file=sys.stderr)
        return 2
    sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
