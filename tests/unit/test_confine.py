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
    monkeypatch.delenv(ENV_FILE_VARIABLE, raising=False)
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


# -- item 2: symlinks are reported, never followed ----------------------------------------------

GOOD = b'---\nid: sop-1-1-ok\ntitle: "SOP 1.1: Ok"\n---\n\n# Ok\n'
SECRET = b"root:x:0:0:root:/root:/bin/bash\n<secret>{token}\n"


def test_validate_reports_symlinks_and_never_reads_their_targets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from playbook_sync.cli import app
    from playbook_sync.validate import read_directory

    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "passwd").write_bytes(SECRET)
    (outside / "dir" / "inner.md").write_bytes(SECRET)
    pb = tmp_path / "pb"
    (pb / "docs").mkdir(parents=True)
    (pb / "docs" / "ok.md").write_bytes(GOOD)
    (pb / "docs" / "leak.md").symlink_to(outside / "passwd")
    (pb / "docs" / "linked").symlink_to(outside / "dir", target_is_directory=True)

    files, unread = read_directory(pb, "docs")
    assert files == {"docs/ok.md": GOOD}
    assert [(p.path, p.message.endswith("not followed")) for p in unread] == [("docs/leak.md", True), ("docs/linked", True)]

    result = CliRunner().invoke(app, ["validate", "--repo", str(pb)], env={"COLUMNS": "250"})
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert f"docs/leak.md:1: symbolic link to '{outside / 'passwd'}': not followed" in lines
    assert f"docs/linked:1: symbolic link to '{outside / 'dir'}': not followed" in lines
    # Nothing of the targets was read: no finding about their content, none under the linked folder.
    assert not any(line.startswith(("docs/leak.md:1: missing", "docs/linked/")) for line in lines), result.output
    assert "1 docs checked, 2 errors" in result.output


def test_a_symlinked_docs_root_is_not_followed(tmp_path: Path) -> None:
    from playbook_sync.validate import read_directory

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.md").write_bytes(SECRET)
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "docs").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    files, unread = read_directory(tmp_path / "pb", "docs")
    assert files == {} and [str(p) for p in unread] == [
        "docs:1: symbolic link: not followed (the docs root must be a directory of the repository)"]


def test_a_committed_symlink_is_not_read_from_the_repository(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_bytes(SECRET)
    repo = init_repo(tmp_path / "pb", {"docs/ok.md": GOOD})
    (tmp_path / "pb" / "docs" / "leak.md").symlink_to(tmp_path / "passwd")
    git(tmp_path / "pb", "add", "docs/leak.md")
    git(tmp_path / "pb", "commit", "-q", "-m", "a link")
    assert repo.read_tree("docs") == {"docs/ok.md": GOOD}


# -- items 13 and "also": unusable names and oversized files are reported, not parsed ----------


def test_validate_reports_a_control_character_name_and_an_oversized_file(tmp_path: Path) -> None:
    from playbook_sync.validate import check_tree, read_directory

    big = GOOD + b"word " * 300
    tree = {"docs/ok.md": GOOD, "docs/tab\there.md": b"---\nbroken: [\n", "docs/big.md": big}
    assert [str(p) for p in check_tree(tree, max_bytes=len(big) - 1)] == [
        f"docs/big.md:1: file is {len(big):,} bytes, over PLAYBOOK_SYNC_MAX_SOP_BYTES={len(big) - 1:,}; not checked",
        "docs/tab\there.md:1: file name 'docs/tab\\there.md' has a control character or other unsafe part; rename the file",
    ]
    pb = tmp_path / "pb"
    for path, content in tree.items():
        (pb / path).parent.mkdir(parents=True, exist_ok=True)
        (pb / path).write_bytes(content)
    files, unread = read_directory(pb, "docs", max_bytes=len(big) - 1)
    assert set(files) == {"docs/ok.md"}
    assert sorted(p.path for p in unread) == ["docs/big.md", "docs/tab\there.md"]


# -- item 8: every path the docs root ever held --------------------------------------------------


def test_paths_ever_lists_deleted_and_renamed_paths_under_the_root(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "pb", FILES | {"README.md": b"r\n"})
    pb = tmp_path / "pb"
    (pb / "docs" / "sops" / "module-1" / "sop-1-2-gone.md").write_text("x\n")
    git(pb, "add", ".")
    git(pb, "commit", "-q", "-m", "add")
    git(pb, "rm", "-q", "docs/sops/module-1/sop-1-2-gone.md")
    git(pb, "mv", "docs/sops/module-1/sop-1-1-call.md", "docs/sops/module-1/sop-1-1\tcall.md")
    git(pb, "commit", "-q", "-m", "delete and rename")
    assert repo.paths_ever("docs") == {"docs/sops/module-1/sop-1-1-call.md", "docs/sops/module-1/sop-1-2-gone.md",
                                       "docs/sops/module-1/sop-1-1\tcall.md"}
    assert "README.md" in repo.paths_ever("")


def test_a_worker_reads_the_env_file_of_the_directory_the_user_ran_in(tmp_path: Path, monkeypatch) -> None:
    from playbook_sync.config import env_file, get_settings

    user, project = tmp_path / "user", tmp_path / "project"
    user.mkdir()
    project.mkdir()
    (user / ".env").write_text("PLAYBOOK_SYNC_DOCS_ROOT=handbook\nPLAYBOOK_SYNC_DATA_DIR=state\n")
    (project / ".env").write_text("PLAYBOOK_SYNC_DOCS_ROOT=wrong\n")
    monkeypatch.delenv(ENV_FILE_VARIABLE, raising=False)
    monkeypatch.delenv("PLAYBOOK_SYNC_DOCS_ROOT", raising=False)
    monkeypatch.delenv("PLAYBOOK_SYNC_DATA_DIR", raising=False)
    monkeypatch.chdir(user)
    get_settings.cache_clear()
    try:
        cli = get_settings()
        exported = cli.worker_env()
        monkeypatch.chdir(project)  # where playbook_sync/worker/local.py starts the worker
        for key, value in exported.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        worker = get_settings()
    finally:
        get_settings.cache_clear()
    assert env_file() == user / ".env"
    assert (cli.docs_root, cli.data_dir) == ("handbook", user / "state")
    assert (worker.docs_root, worker.data_dir, worker.playbook_path) == ("handbook", user / "state", user / "state" / "playbook")
