"""Bad configuration as a new user meets it: the real console script, one or two lines, no traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import inspect

from playbook_sync import db, demo
from playbook_sync.providers.localgit import init_repo

pytestmark = pytest.mark.integration
SCRIPT = Path(sys.executable).parent / "playbook-sync"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "playbook_sync.cli"]
# Variables of the developer's shell that would change what the command sees.
FOREIGN = ("PLAYBOOK_SYNC_", "ANTHROPIC_", "OPENAI_")


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The installed `playbook-sync` from a scratch directory (no ./.env), with only these settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    clean |= {"PLAYBOOK_SYNC_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"} | (env or {})
    return subprocess.run([*COMMAND, *args], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=timeout)


def lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def assert_one_clear_line(result: subprocess.CompletedProcess, setting: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out, out
    assert 1 <= len(lines(result)) <= 3, out
    assert setting in out, out
    return out


def _a_file(tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("not a folder\n")
    return str(tmp_path / "a-file")


def plain_dir(tmp_path: Path) -> str:
    (tmp_path / "plain").mkdir()
    return str(tmp_path / "plain")


# (id, settings, the variable the message must name, what else it must say); the command is `run`.
CASES = [
    ("database-refused", {"PLAYBOOK_SYNC_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
     "PLAYBOOK_SYNC_DATABASE_URL", "Connection refused"),
    ("database-junk", {"PLAYBOOK_SYNC_DATABASE_URL": "junk"}, "PLAYBOOK_SYNC_DATABASE_URL", "not a URL"),
    ("database-no-driver", {"PLAYBOOK_SYNC_DATABASE_URL": "mysql://root:hunter2@127.0.0.1:1/x"},
     "PLAYBOOK_SYNC_DATABASE_URL", "postgresql+psycopg2://"),
    ("database-sqlite", {"PLAYBOOK_SYNC_DATABASE_URL": "sqlite:///playbook.db"}, "PLAYBOOK_SYNC_DATABASE_URL", "not PostgreSQL"),
    ("broker-closed", {"PLAYBOOK_SYNC_BROKER_URL": "redis://127.0.0.1:1/0"}, "PLAYBOOK_SYNC_BROKER_URL", "127.0.0.1:1"),
    ("broker-junk", {"PLAYBOOK_SYNC_BROKER_URL": "junk"}, "PLAYBOOK_SYNC_BROKER_URL", "not a URL"),
    ("broker-unknown-transport", {"PLAYBOOK_SYNC_BROKER_URL": "nosuch://x"}, "PLAYBOOK_SYNC_BROKER_URL", "nosuch"),
    ("bands-json", {"PLAYBOOK_SYNC_BANDS": "{strong: 0.7"}, "PLAYBOOK_SYNC_BANDS", "not valid JSON"),
    ("bands-no-model", {"PLAYBOOK_SYNC_BANDS": '{"strong": 75, "weak": 60}'}, "PLAYBOOK_SYNC_BANDS", "text-embedding-3-small"),
    ("bands-impossible", {"PLAYBOOK_SYNC_BANDS": '{"offline-lexical-v1": {"strong": 75, "weak": 60}}'},
     "PLAYBOOK_SYNC_BANDS", "weak <= strong <= 1"),
    ("bands-typo", {"PLAYBOOK_SYNC_BANDS": '{"offline-lexical-v1": {"stron": 0.4}}'}, "PLAYBOOK_SYNC_BANDS", "unknown key"),
    ("top-k", {"PLAYBOOK_SYNC_TOP_K": "0"}, "PLAYBOOK_SYNC_TOP_K", "at least 1"),
    ("top-k-text", {"PLAYBOOK_SYNC_TOP_K": "three"}, "PLAYBOOK_SYNC_TOP_K", "integer"),
    ("enrichments", {"PLAYBOOK_SYNC_MAX_ENRICHMENTS_PER_SOP": "0"}, "PLAYBOOK_SYNC_MAX_ENRICHMENTS_PER_SOP", "at least 1"),
    ("cluster-min", {"PLAYBOOK_SYNC_CLUSTER_MIN_ENTRIES": "1"}, "PLAYBOOK_SYNC_CLUSTER_MIN_ENTRIES", "at least 2"),
    ("cluster-similarity", {"PLAYBOOK_SYNC_CLUSTER_SIMILARITY": "30"}, "PLAYBOOK_SYNC_CLUSTER_SIMILARITY", "at most 1"),
    ("concurrency", {"PLAYBOOK_SYNC_LLM_CONCURRENCY": "0"}, "PLAYBOOK_SYNC_LLM_CONCURRENCY", "at least 1"),
    ("batch-size", {"PLAYBOOK_SYNC_EMBEDDING_BATCH_SIZE": "5000"}, "PLAYBOOK_SYNC_EMBEDDING_BATCH_SIZE", "at most 2048"),
    ("timeout", {"PLAYBOOK_SYNC_LLM_TIMEOUT_SECONDS": "-1"}, "PLAYBOOK_SYNC_LLM_TIMEOUT_SECONDS", "above 0"),
    ("cron", {"PLAYBOOK_SYNC_SCHEDULE_CRON": "every sunday"}, "PLAYBOOK_SYNC_SCHEDULE_CRON", "five fields"),
    # Five fields, but beat would die on it at start: refused by Celery's own parser, now.
    ("cron-range", {"PLAYBOOK_SYNC_SCHEDULE_CRON": "99 * * * *"}, "PLAYBOOK_SYNC_SCHEDULE_CRON", "99 > 59"),
    ("rate-limit", {"PLAYBOOK_SYNC_LLM_RATE_LIMIT": "fast"}, "PLAYBOOK_SYNC_LLM_RATE_LIMIT", "60/m"),
    ("dimensions", {"PLAYBOOK_SYNC_EMBEDDING_DIMENSIONS": "3"}, "PLAYBOOK_SYNC_EMBEDDING_DIMENSIONS", "at least 8"),
    # In range for the embedders, but not the database's vector columns: was a DataError traceback mid-run.
    ("dimensions-db", {"PLAYBOOK_SYNC_EMBEDDING_DIMENSIONS": "64"}, "PLAYBOOK_SYNC_EMBEDDING_DIMENSIONS", "must be 1536"),
    ("timeout-inf", {"PLAYBOOK_SYNC_LLM_TIMEOUT_SECONDS": "inf"}, "PLAYBOOK_SYNC_LLM_TIMEOUT_SECONDS", "finite"),
    ("data-dir-file", {"PLAYBOOK_SYNC_DATA_DIR": lambda tmp: _a_file(tmp)}, "PLAYBOOK_SYNC_DATA_DIR", "is a file, not a folder"),
    ("data-dir-under-file", {"PLAYBOOK_SYNC_DATA_DIR": lambda tmp: _a_file(tmp) + "/data"}, "PLAYBOOK_SYNC_DATA_DIR",
     "cannot create"),
    ("docs-root-outside", {"PLAYBOOK_SYNC_DOCS_ROOT": "../.."}, "PLAYBOOK_SYNC_DOCS_ROOT", "inside the playbook"),
    ("repo-missing", {"PLAYBOOK_SYNC_REPO_PATH": "no/such/playbook"}, "PLAYBOOK_SYNC_REPO_PATH", "does not exist"),
    ("repo-not-git", {"PLAYBOOK_SYNC_REPO_PATH": plain_dir}, "PLAYBOOK_SYNC_REPO_PATH", "not a git repository"),
    ("anthropic-no-key", {"PLAYBOOK_SYNC_LLM": "anthropic"}, "ANTHROPIC_API_KEY", "no Anthropic API key"),
    ("openai-no-key", {"PLAYBOOK_SYNC_EMBEDDER": "openai"}, "OPENAI_API_KEY", "no OpenAI API key"),
    ("llm-batch-offline", {"PLAYBOOK_SYNC_LLM_BATCH": "true"}, "PLAYBOOK_SYNC_LLM_BATCH", "anthropic"),
    ("playbook-name", {"PLAYBOOK_SYNC_PLAYBOOK": "gitlab"}, "PLAYBOOK_SYNC_PLAYBOOK", "local or github"),
    ("github-no-repo", {"PLAYBOOK_SYNC_PLAYBOOK": "github"}, "PLAYBOOK_SYNC_GITHUB_REPO", "owner/name"),
    ("embedder-name", {"PLAYBOOK_SYNC_EMBEDDER": "word2vec"}, "PLAYBOOK_SYNC_EMBEDDER", "word2vec"),
    ("llm-name", {"PLAYBOOK_SYNC_LLM": "gpt"}, "PLAYBOOK_SYNC_LLM", "'gpt'"),
    ("llm-custom-missing", {"PLAYBOOK_SYNC_LLM": "no_such_module:MyLLM"}, "PLAYBOOK_SYNC_LLM", "no_such_module"),
]


@pytest.mark.parametrize("env, setting, says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_setting_is_one_clear_line(tmp_path, env, setting, says):
    env = {k: v(tmp_path) if callable(v) else v for k, v in env.items()}
    result = cli(tmp_path, "run", env=env, timeout=60)
    out = assert_one_clear_line(result, setting)
    assert out.lstrip().startswith("error: ") and says in out, out
    assert "hunter2" not in out  # a password in a URL is never echoed
    assert not (tmp_path / "data" / "pg").exists()  # refused before any embedded service started


@pytest.mark.parametrize("command", [["runs"], ["ingest", "entries.jsonl"], ["calibrate"], ["run", "--dry-run"]])
def test_a_data_dir_that_is_a_file_is_one_line_for_every_command(tmp_path, command):
    # Was a FileExistsError traceback from the embedded services' mkdir.
    (tmp_path / "entries.jsonl").write_text("")
    result = cli(tmp_path, *command, env={"PLAYBOOK_SYNC_DATA_DIR": _a_file(tmp_path)}, timeout=60)
    out = assert_one_clear_line(result, "PLAYBOOK_SYNC_DATA_DIR")
    assert out.startswith("error: PLAYBOOK_SYNC_DATA_DIR: ") and "is a file, not a folder" in out, out


@pytest.mark.parametrize("command, env, setting", [
    (["validate"], {"PLAYBOOK_SYNC_REPO_PATH": "no/such/playbook"}, "PLAYBOOK_SYNC_REPO_PATH"),  # was a usage box, exit 2
    (["serve", "--host", "0.0.0.0"], {}, "PLAYBOOK_SYNC_API_TOKEN"),  # said "api_token", a name nobody can set
])
def test_other_commands_name_the_variable_and_exit_1(tmp_path, command, env, setting):
    result = cli(tmp_path, *command, env=env, timeout=60)
    out = assert_one_clear_line(result, setting)
    assert result.returncode == 1 and out.startswith(f"error: {setting}: "), out


def test_debug_shows_the_traceback(tmp_path):
    result = cli(tmp_path, "--debug", "run", env={"PLAYBOOK_SYNC_TOP_K": "0"}, timeout=60)
    assert result.returncode != 0 and "Traceback" in result.stdout + result.stderr


def test_ingest_does_not_need_the_broker(tmp_path, database_url):
    # ingest never sends a task: a broker that is down must not stop capture.
    path = tmp_path / "entries.jsonl"
    path.write_text('{"category": "question", "content": "How long should a proposal be?", "transcript_type": "sales"}\n')
    result = cli(tmp_path, "ingest", str(path), env={"PLAYBOOK_SYNC_DATABASE_URL": database_url,
                                                      "PLAYBOOK_SYNC_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 0 and "1 new entries" in result.stdout, result.stdout + result.stderr


def test_a_worker_with_bad_settings_says_one_line(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)} | {"PLAYBOOK_SYNC_BANDS": '{"m": {"weak": 2}}'}
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "playbook_sync.worker.app", "worker", "--pool", "solo"],
                            cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out and "PLAYBOOK_SYNC_BANDS: m: need 0 < weak" in out, out
    assert len(lines(result)) <= 3, out


def tables(url: str) -> set[str]:
    engine = db.get_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_db_downgrade_needs_a_revision_and_a_confirmation(tmp_path, database_url):
    env = {"PLAYBOOK_SYNC_DATABASE_URL": database_url, "PLAYBOOK_SYNC_BROKER_URL": "redis://127.0.0.1:1/0"}
    before = tables(database_url)
    assert "cp_playbook_sync_runs" in before
    bare = cli(tmp_path, "db", "downgrade", env=env)
    assert_one_clear_line(bare, "revision")
    unconfirmed = cli(  # stdin is not a terminal here: no prompt, a refusal
        tmp_path, "db", "downgrade", "base", env=env)
    assert_one_clear_line(unconfirmed, "--yes")
    assert tables(database_url) == before  # nothing was dropped
    confirmed = cli(tmp_path, "db", "downgrade", "base", "--yes", env=env)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert "cp_playbook_sync_runs" not in tables(database_url)


def test_db_revisions_a_version_does_not_have_are_one_line_and_the_suggested_command_works(tmp_path, database_url):
    env = {"PLAYBOOK_SYNC_DATABASE_URL": database_url, "PLAYBOOK_SYNC_BROKER_URL": "redis://127.0.0.1:1/0"}
    head = cli(tmp_path, "db", "upgrade", env=env)
    assert head.returncode == 0 and re.search(r"database upgraded to head \(\d{4}\)", head.stdout), head.stdout
    unknown = cli(tmp_path, "db", "downgrade", "9999", "--yes", env=env)
    assert "9999" in assert_one_clear_line(unknown, "database migrations")
    suggested = re.search(r"`db downgrade ([^`]+)`", cli(tmp_path, "db", "downgrade", env=env).stdout).group(1).split()
    down = cli(tmp_path, "db", "downgrade", *suggested, env=env)  # what the refusal suggests, as typed
    assert down.returncode == 0 and "database downgraded to 00" in down.stdout, down.stdout + down.stderr


def test_run_over_a_docs_root_without_sops_fails_and_says_so(tmp_path):
    # Item 5 as a user sees it: a real run on the embedded profile with a local worker.
    repo = tmp_path / "playbook"
    init_repo(repo, demo.playbook_files(), branch="main")
    # The embedded PostgreSQL runs as another user: its data dir must not be under pytest's
    # private tmp dirs (another pytest session resets their permissions; see conftest.pg_socket).
    data = Path(tempfile.mkdtemp(prefix="playbook-sync-cli-"))
    env = {"PLAYBOOK_SYNC_REPO_PATH": str(repo), "PLAYBOOK_SYNC_DOCS_ROOT": "documentation",
           "PLAYBOOK_SYNC_DATA_DIR": str(data)}
    try:
        result = cli(tmp_path, "run", env=env, timeout=240)
        out = assert_one_clear_line(result, "PLAYBOOK_SYNC_DOCS_ROOT")
        assert "documentation/" in out and str(repo) in out and "no SOPs" in out, out
        history = cli(tmp_path, "runs", env=env, timeout=240)
        assert history.returncode == 0 and " failed " in history.stdout and "success" not in history.stdout, history.stdout
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.parametrize("docs_root, files", [
    ("documentation", {}),  # a folder that is not in the repository
    ("notes", {"notes/readme.md": b"no frontmatter, not an SOP\n", "notes/b.mdx": b"---\nid: [\n---\n"}),
], ids=["missing", "unreadable"])
def test_a_docs_root_without_sops_fails_the_run_before_touching_anything(tmp_path, settings, docs_root, files):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from playbook_sync import pipeline, store
    from playbook_sync.deps import Deps
    from playbook_sync.errors import ConfigError
    from playbook_sync.models import RunItem, SyncRun
    from tests.support import entry

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    init_repo(settings.playbook_path, demo.playbook_files() | files, branch=settings.branch)
    good = Deps.from_settings(settings)
    with good.session() as s:
        store.upsert_entries(s, entries=[entry("Name the competitor in cold email subject lines.", created_at=t0)])
    assert pipeline.run_inline(good, now=t0 + timedelta(days=1))["status"] == "success"
    late = entry("Send the agenda the day before a discovery call.", created_at=t0 + timedelta(days=2))
    with good.session() as s:
        store.upsert_entries(s, entries=[late])
        cache, window = store.sop_cache(s), store.last_window_end(s)
    assert cache

    wrong = Deps.from_settings(settings.model_copy(update={"docs_root": docs_root}))
    with pytest.raises(ConfigError) as caught, wrong.session() as s:
        pipeline.start_run(s, wrong, now=t0 + timedelta(days=7))
    assert caught.value.setting == "PLAYBOOK_SYNC_DOCS_ROOT"
    assert f"{docs_root}/ in {settings.playbook_path}" in str(caught.value) and "no SOPs" in str(caught.value)
    with good.session() as s:
        assert store.sop_cache(s) == cache  # the SOP cache is intact
        assert store.last_window_end(s) == window  # the window stays
        failed = s.scalars(select(SyncRun).where(SyncRun.status == "failed")).one()
        assert "PLAYBOOK_SYNC_DOCS_ROOT" in failed.error_log
        assert s.scalar(select(func.count()).select_from(RunItem).where(RunItem.entry_id == late.id)) == 0
    # With the right setting the next run takes the entry the refused run did not.
    after = pipeline.run_inline(good, now=t0 + timedelta(days=8))
    assert after["status"] == "success" and after["entries"] == 1


def test_db_downgrade_on_a_terminal_asks_for_the_revision_typed_out(tmp_path, database_url):
    import pty

    env = {"PLAYBOOK_SYNC_DATABASE_URL": database_url, "PLAYBOOK_SYNC_BROKER_URL": "redis://127.0.0.1:1/0"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)} | env | {"COLUMNS": "200"}

    def answer(text: str) -> subprocess.CompletedProcess:
        controller, terminal = pty.openpty()  # stdin is a terminal: the command asks
        try:
            os.write(controller, text.encode())
            return subprocess.run([*COMMAND, "db", "downgrade", "base"], cwd=tmp_path, env=clean, stdin=terminal,
                                  capture_output=True, text=True, timeout=120)
        finally:
            os.close(controller)
            os.close(terminal)

    refused = answer("yes\n")  # not the revision
    assert refused.returncode == 1 and "refused" in refused.stdout, refused.stdout + refused.stderr
    assert "cp_playbook_sync_runs" in tables(database_url)
    typed = answer("base\n")
    assert typed.returncode == 0 and "downgraded to base" in typed.stdout, typed.stdout + typed.stderr
    assert "cp_playbook_sync_runs" not in tables(database_url)
