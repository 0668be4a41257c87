"""The package as an operator installs it: a built wheel in a fresh virtual environment, no source tree.

The wheel is built from a copy of the sources that is deleted before anything runs, so a file
found through the checkout (instead of package data) fails the test. The fresh environment gets
its dependencies through a .pth line pointing at this interpreter's site-packages: nothing is
downloaded, and the project itself is importable only from the wheel (a .pth line adds a
directory to sys.path without processing the .pth files in it, so the editable install of the
checkout stays invisible).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", ".playbook-sync", "build", "dist", "*.egg-info", "__pycache__",
                              "node_modules", ".pytest_cache", ".hypothesis", "bench")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(fresh venv, its site-packages) with the wheel of this checkout installed and the sources gone."""
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv = base / "src", base / "dist", base / "venv"
    shutil.copytree(ROOT, src, ignore=SKIP)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PLAYBOOK_SYNC_")}
    # No build isolation: the build uses the locked setuptools already installed (no download).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
         base, env)
    shutil.rmtree(src)
    wheels = list(dist.glob("playbook_sync-*.whl"))
    assert len(wheels) == 1, wheels
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        base, env).stdout.strip())
    dependencies = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheels[0])],
         base, env)
    return venv, purelib


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PLAYBOOK_SYNC_")}
    return env | {"PLAYBOOK_SYNC_DATA_DIR": str(data_dir), "COLUMNS": "200"}


def test_the_wheel_carries_prompts_migrations_and_types(installed, tmp_path):
    venv, purelib = installed
    code = ("import playbook_sync, playbook_sync.db as d, playbook_sync.prompts as p, playbook_sync.worker.app as w;"
            "print(playbook_sync.__file__); print(d.MIGRATIONS); print(p.default_dir()); print(w.__file__)")
    lines = _run([str(venv / "bin" / "python"), "-c", code], tmp_path, _env(tmp_path)).stdout.split()
    assert all(Path(line).is_relative_to(purelib) for line in lines), lines
    package = purelib / "playbook_sync"
    assert sorted(p.name for p in (package / "prompt_templates").glob("*.md")) == \
        sorted(p.name for p in (ROOT / "playbook_sync" / "prompt_templates").glob("*.md"))
    assert sorted(p.name for p in (package / "migrations" / "versions").glob("*.py")) == \
        sorted(p.name for p in (ROOT / "playbook_sync" / "migrations" / "versions").glob("*.py"))
    assert (package / "migrations" / "env.py").is_file() and (package / "py.typed").is_file()


def test_version_db_upgrade_and_demo_run_from_the_installed_console_script(installed, tmp_path):
    venv, purelib = installed
    cli, cwd = str(venv / "bin" / "playbook-sync"), tmp_path / "elsewhere"
    cwd.mkdir()
    # Not under pytest's tmp dirs: a pytest starting elsewhere resets their modes to 0700, and
    # the embedded server (its own system user when we are root) must traverse to its data.
    data = Path(tempfile.mkdtemp(prefix="playbook-sync-wheel-"))
    env = _env(data)
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run([cli, "--version"], cwd, env).stdout.strip() == f"playbook-sync {expected}"
    assert "database upgraded to head" in _run([cli, "db", "upgrade"], cwd, env).stdout
    demo = _run([cli, "demo"], cwd, env)
    assert "commit: " in demo.stdout and "created  docs/sops/" in demo.stdout, demo.stdout
    # The compose services' entry point, from any directory: `celery -A playbook_sync.worker.app` loads our app.
    report = _run([str(venv / "bin" / "python"), "-m", "celery", "-A", "playbook_sync.worker.app", "report"], cwd, env).stdout
    assert "playbook_sync.llm" in report  # our task routes, so it is our app, not an empty default
    shutil.rmtree(data, ignore_errors=True)
