"""The suite's own isolation: a stray ./.env cannot change a test, in this process or in a child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from playbook_sync.config import get_settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
STRAY = "PLAYBOOK_SYNC_TOP_K=9\nPLAYBOOK_SYNC_LLM=anthropic\nPLAYBOOK_SYNC_BRANCH=stray\n"


def test_a_stray_dotenv_in_the_cwd_does_not_change_the_tests_settings(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(STRAY)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    settings = get_settings()
    assert (settings.top_k, settings.llm, settings.branch) == (3, "offline", "main")


def test_workers_and_clis_the_tests_start_ignore_a_stray_dotenv_too(tmp_path):
    # A child process (worker, CLI) inherits the environment, and with it the suite's "no dotenv file".
    (tmp_path / ".env").write_text(STRAY)
    code = "from playbook_sync.config import get_settings as g; s = g(); print(s.top_k, s.llm, s.branch)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "offline", "main"]


def test_the_dotenv_file_is_still_read_outside_the_tests(tmp_path):
    # The switch is the suite's, not a change of behaviour: without it, ./.env is read as documented.
    (tmp_path / ".env").write_text(STRAY)
    env = {k: v for k, v in os.environ.items() if k != "PLAYBOOK_SYNC_ENV_FILE"}
    code = "from playbook_sync.config import get_settings as g; s = g(); print(s.top_k, s.llm, s.branch)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**env, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["9", "anthropic", "stray"]
