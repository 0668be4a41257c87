"""The real console script driven as a user does, for the CLI tests: its environment, its processes and
what it leaves behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from playbook_sync import demo
from playbook_sync.providers.localgit import init_repo

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(sys.executable).parent / "playbook-sync")  # the real console script
ENTRIES = demo.HERE / "entries.jsonl"
COUNTS = re.compile(r"(\d+) = (\d+) (\d+) (\d+) (\d+) (\d+)")


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_SYNC_")}
    # PYTHONPATH: the command may load a test provider (tests.support) named in its settings.
    return env | {"PLAYBOOK_SYNC_DATA_DIR": str(data_dir), "COLUMNS": "200", "PYTHONPATH": str(ROOT)} | extra


def cli(data_dir: Path, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], cwd=ROOT, env=cli_env(data_dir, **extra), capture_output=True, text=True,
                          timeout=timeout)


def spawn(data_dir: Path, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([SCRIPT, *args], cwd=ROOT, env=cli_env(data_dir, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def processes_of(data_dir: Path) -> dict[int, str]:
    """pid → command line of every process started for this data dir (the CLI exports it to its
    children: the worker, valkey-server and postgres all carry it in their environment)."""
    marker = f"PLAYBOOK_SYNC_DATA_DIR={data_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"  # a zombie is gone too
    except (OSError, IndexError):
        return False


def leftovers(data_dir: Path) -> dict[int, str]:
    """processes_of, plus the servers named by their pid files: valkey-server rewrites its
    environment area with its process title, so only its pid file tells it is ours."""
    found = processes_of(data_dir)
    servers = [(f, "valkey-server") for f in (data_dir / "redis").glob("*/valkey.pid")]  # one directory per command
    for pid_file, name in (*servers, (data_dir / "pg" / "postmaster.pid", "postgres")):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if alive(pid):
            found[pid] = name
    return found


def worker_log_shows_progress(data_dir: Path) -> bool:
    log = data_dir / "worker.log"
    return log.exists() and re.search(r"playbook_sync\.process_entry\[[^\]]+\] succeeded", log.read_text(errors="replace")) is not None


def row_counts(runs_output: str, run_prefix: str) -> tuple[int, ...]:
    line = next(line for line in runs_output.splitlines() if line.startswith(run_prefix))
    return tuple(int(n) for n in COUNTS.search(line).groups())


def sample_playbook(data_dir: Path) -> None:
    init_repo(data_dir / "playbook", demo.playbook_files())

