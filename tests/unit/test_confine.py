"""Confined to the configured repository (DESIGN §2.7): no enclosing repo, no symlinks, paths resolved once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from playbook_sync.config import ENV_FILE_VARIABLE, Settings
from playbook_sync.providers.localgit import LocalGitRepo, RepoPathError, init_repo

pytestmark = pytest.mark.unit

FILES = {"docs/sops/module-1/sop-1-1-call.md": b"---\nid: sop-1-1-call\ntitle: \"SOP 1.1: Call\"\n---\n\n# Call\n"}
IDENTITY = {"GIT_AUTHOR_NAME": "Person", "GIT_AUTHOR_EMAIL": "p@example.com",
            "GIT_COMMITTER_NAME": "Person", "GIT_COMMITTER_EMAIL": "p@example.com"}


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | IDENTITY
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True, env=env).stdout


def enclosing_repo(root: Path) -> tuple[Path, str]:
    """A person's unrelated repository with one commit; returns (path, head)."""
    root.mkdir()
    git(root, "init", "-q", "--initial-branch=main")
    (root / "notes.txt").write_text("mine\n")
    git(root, "add", "notes.txt")
    git(root, "commit", "-q", "-m", "my work")
    return root, git(root, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("layout", ["plain directory", "HEAD missing"])
def test_a_directory_inside_another_repository_is_refused(tmp_path: Path, layout: str) -> None:
    outer, head = enclosing_repo(tmp_path / "outer")
    inner = outer / "playbook"
    if layout == "plain directory":
        (inner / "docs").mkdir(parents=True)
    else:
        init_repo(inner, FILES)
        (inner / ".git" / "HEAD").unlink()  # a damaged playbook checkout
    repo = LocalGitRepo(inner)
    with pytest.raises(RepoPathError, match=r"^PLAYBOOK_SYNC_REPO_PATH: .*outer/playbook is not a git repository"):
        repo.head()
    with pytest.raises(RepoPathError, match="PLAYBOOK_SYNC_REPO_PATH"):
        repo.commit({"docs/sops/module-1/sop-1-9-new.md": b"new\n"}, "new SOP", parent=head)
    with pytest.raises(RepoPathError, match="PLAYBOOK_SYNC_REPO_PATH"):
        repo.read_tree("docs", head)
    # The enclosing repository is untouched: same head, one commit, no new files.
    assert git(outer, "rev-parse", "HEAD").strip() == head
    assert git(outer, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(outer, "ls-tree", "-r", "--name-only", "HEAD").split() == ["notes.txt"]


def test_a_subdirectory_of_the_playbook_is_not_its_top_level(tmp_path: Path) -> None:
    init_repo(tmp_path / "pb", FILES)
    with pytest.raises(RepoPathError, match=r"PLAYBOOK_SYNC_REPO_PATH: .*pb/docs is not"):
        LocalGitRepo(tmp_path / "pb" / "docs").head()


def test_a_missing_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(RepoPathError, match=r"^PLAYBOOK_SYNC_REPO_PATH: .*nowhere does not exist"):
        LocalGitRepo(tmp_path / "nowhere").head()


@pytest.mark.parametrize("bare", [False, True])
def test_a_repository_nested_in_another_one_is_its_own(tmp_path: Path, bare: bool) -> None:
    outer, head = enclosing_repo(tmp_path / "outer")
    repo = init_repo(outer / "playbook", FILES, bare=bare)  # what `demo` does inside a checkout
    mine = LocalGitRepo(outer / "playbook")
    assert mine.head() == repo.head() != head
    assert set(mine.read_tree("docs")) == set(FILES)
    sha = mine.commit({"docs/sops/module-1/sop-1-2-next.md": b"next\n"}, "next", parent=mine.head())
    assert mine.head() == sha and git(outer, "rev-parse", "HEAD").strip() == head


# -- item 11: paths resolved once, absolutely -------------------------------------------------


def test_relative_paths_are_resolved_against_the_callers_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(_env_file=None, data_dir=Path("data"), reports_dir=Path("out/../reports"), prompts_dir=Path("p"))
    assert s.data_dir == tmp_path / "data" and s.playbook_path == tmp_path / "data" / "playbook"
    assert s.report_path == tmp_path / "reports" and s.prompts_dir == tmp_path / "p"
    env = s.worker_env()
    assert env == {"PLAYBOOK_SYNC_DATA_DIR": str(tmp_path / "data"),
                   "PLAYBOOK_SYNC_REPO_PATH": str(tmp_path / "data" / "playbook"),
                   "PLAYBOOK_SYNC_REPORTS_DIR": str(tmp_path / "reports"),
                   "PLAYBOOK_SYNC_PROMPTS_DIR": str(tmp_path / "p"),
                   ENV_FILE_VARIABLE: str(tmp_path / ".env")}
    # What the worker (another cwd) reads back from that environment is the same.
    monkeypatch.chdir("/")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    again = Settings(_env_file=None)
    assert (again.data_dir, again.playbook_path, again.report_path, again.prompts_dir) == (
        s.data_dir, s.playbook_path, s.report_path, s.prompts_dir)
