"""PlaybookRepo behaviour for LocalGitRepo and GitHubRepo (real git; real PyGithub over HTTP)."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from playbook_sync.providers.base import (
    NonFastForward,
    PlaybookRepo,
    ProviderError,
    TransientProviderError,
)
from playbook_sync.providers.github import GitHubRepo
from playbook_sync.providers.localgit import LocalGitRepo, init_repo
from tests.fakes.github_server import FakeGitHub

pytestmark = pytest.mark.unit

TOKEN = "ghp_fakeTOKENvalue1234567890"
FILES = {
    "docs/sops/module-1/sop-1-1.md": b"# SOP 1.1\n\n## Steps\n\n1. Call.\n",
    "docs/sops/module-1/sop-1-2.md": b"# SOP 1.2\r\nwindows line endings\r\n",
    "docs/img/logo.bin": bytes(range(256)),
    "docs/intro.md": "# Intro – é\n".encode(),
    "README.md": b"readme\n",
    "docsy/not-docs.md": b"outside the root\n",
}


@dataclass
class Backend:
    """A repo under test plus `origin`, the git repository that really holds its commits."""

    name: str
    repo: LocalGitRepo | GitHubRepo  # both satisfy PlaybookRepo (checked below)
    origin: LocalGitRepo
    server: FakeGitHub | None = None

    def sh(self, *args: str) -> str:
        """Run git in the underlying repository."""
        return self.origin.git(*args).decode()


def _github(server: FakeGitHub, token: str | None = TOKEN, **kw: object) -> GitHubRepo:
    return GitHubRepo(
        server.full_name, token, base_url=server.base_url, retry_backoff=0.0,
        seconds_between_requests=None, seconds_between_writes=None, **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "remote.git", token=TOKEN, files=FILES) as srv:
        yield srv


@pytest.fixture(params=["local", "github"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        repo = init_repo(tmp_path / "playbook", FILES)  # non-bare: has a work tree
        return Backend("local", repo, repo)
    srv = request.getfixturevalue("server")
    return Backend("github", _github(srv), srv.git, srv)


def test_both_implement_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.repo, PlaybookRepo)
    assert backend.repo.branch == "main"


def test_read_tree_returns_files_under_root(backend: Backend) -> None:
    docs = {p: c for p, c in FILES.items() if p.startswith("docs/")}
    assert backend.repo.read_tree("docs") == docs
    assert backend.repo.read_tree("/docs/", ref=backend.repo.head()) == docs
    assert backend.repo.read_tree("docs/sops") == {
        p: c for p, c in FILES.items() if p.startswith("docs/sops/")
    }
    assert backend.repo.read_tree("") == FILES


def test_read_file(backend: Backend) -> None:
    assert backend.repo.read_file("docs/img/logo.bin") == FILES["docs/img/logo.bin"]
    assert backend.repo.read_file("README.md") == b"readme\n"
    assert backend.repo.read_file("docs/missing.md") is None


def test_read_tree_at_an_older_ref(backend: Backend) -> None:
    first = backend.repo.head()
    backend.repo.commit({"docs/intro.md": b"changed\n"}, "change", first)
    assert backend.repo.read_tree("docs", ref=first)["docs/intro.md"] == FILES["docs/intro.md"]
    assert backend.repo.read_tree("docs")["docs/intro.md"] == b"changed\n"


def test_many_changes_make_exactly_one_commit_on_the_previous_head(backend: Backend) -> None:
    before = backend.repo.head()
    count_before = int(backend.sh("rev-list", "--count", "refs/heads/main"))
    changes = {
        "docs/sops/module-1/sop-1-1.md": b"# SOP 1.1\n\n:::tip\nx\n:::\n",
        "docs/sops/module-1/sop-1-2.md": b"# SOP 1.2\r\nmore\r\n",
        "docs/sops/module-2/sop-2-1.md": b"# A brand new SOP\n",
        "docs/img/new.bin": b"\x00\xff\xfe binary",
    }
    message = "playbook-sync: weekly run\n\nPlaybook-Sync-Run: run-1\n"

    new = backend.repo.commit(changes, message, before)

    assert backend.repo.head() == new
    assert backend.sh("rev-parse", "refs/heads/main").strip() == new
    assert int(backend.sh("rev-list", "--count", "refs/heads/main")) == count_before + 1
    assert backend.sh("log", "-1", "--format=%P", new).split() == [before]  # one parent
    changed = set(backend.sh("diff", "--name-only", before, new).split())
    assert changed == set(changes)
    for path, content in changes.items():
        assert backend.origin.git("cat-file", "blob", f"{new}:{path}") == content
    assert backend.repo.read_tree("") == {**FILES, **changes}
    author = backend.sh("log", "-1", "--format=%an <%ae>|%cn", new)
    assert author == "playbook-sync <playbook-sync@users.noreply.github.com>|playbook-sync\n"
    assert "Playbook-Sync-Run: run-1" in backend.sh("log", "-1", "--format=%B", new)


def test_delete_with_none(backend: Backend) -> None:
    new = backend.repo.commit({"docs/intro.md": None}, "remove intro", backend.repo.head())
    assert "docs/intro.md" not in backend.repo.read_tree("docs")
    assert backend.sh("diff", "--name-status", f"{new}^", new).split() == ["D", "docs/intro.md"]


def test_trailer_is_found_after_the_commit_and_not_before(backend: Backend) -> None:
    trailer = "Playbook-Sync-Run: 0b0e6c3e-1111-4222-8333-944445555666"
    assert backend.repo.find_commit_with_trailer(trailer) is None
    message = f"Sync\n\n{trailer}\n"
    new = backend.repo.commit({"docs/intro.md": b"x\n"}, message, backend.repo.head())
    other = backend.repo.commit({"docs/intro.md": b"y\n"}, "later commit", new)
    assert backend.repo.find_commit_with_trailer(trailer) == new
    # Exact line match: a prefix of the run id, or a mention inside a line, is not a hit.
    assert backend.repo.find_commit_with_trailer(trailer[:-1]) is None
    assert backend.repo.find_commit_with_trailer("Playbook-Sync-Run: other") is None
    # Outside the searched window: only `other` is looked at.
    assert backend.repo.find_commit_with_trailer(trailer, limit=1) is None
    assert other != new


def test_trailer_search_pages_through_history(backend: Backend) -> None:
    # 35 commits > one page of 30, so GitHub's Link pagination is exercised.
    head = backend.repo.head()
    head = backend.origin.commit({"docs/intro.md": b"0"}, "deep\n\nPlaybook-Sync-Run: deep", head)
    target = head
    for i in range(34):
        head = backend.origin.commit({"docs/intro.md": str(i + 1).encode()}, f"c{i}", head)
    assert backend.repo.find_commit_with_trailer("Playbook-Sync-Run: deep", limit=50) == target
    assert backend.repo.find_commit_with_trailer("Playbook-Sync-Run: deep", limit=30) is None
    if backend.server is not None:
        assert backend.server.count("GET", "/commits") >= 2


def test_stale_parent_raises_and_keeps_the_other_commit(backend: Backend) -> None:
    stale = backend.repo.head()
    # Someone else pushes to the branch meanwhile (directly into the underlying repo).
    theirs = backend.origin.commit({"docs/theirs.md": b"theirs\n"}, "someone else", stale)

    with pytest.raises(NonFastForward):
        backend.repo.commit({"docs/ours.md": b"ours\n"}, "ours", stale)

    assert backend.repo.head() == theirs
    tree = backend.repo.read_tree("docs")
    assert tree["docs/theirs.md"] == b"theirs\n"
    assert "docs/ours.md" not in tree
    # The rebase the pipeline does: re-read the head, commit again on top of it.
    ours = backend.repo.commit({"docs/ours.md": b"ours\n"}, "ours", backend.repo.head())
    assert backend.sh("log", "-1", "--format=%P", ours).split() == [theirs]


def test_push_racing_the_ref_update_raises_non_fast_forward(backend: Backend) -> None:
    """The ref moves after the head check but before the ref update (compare-and-swap)."""
    parent = backend.repo.head()
    pushed: list[str] = []

    def push() -> None:
        pushed.append(backend.origin.commit({"docs/race.md": b"r"}, "racer", parent))

    if backend.server is not None:
        backend.server.before_next("/git/refs/heads/main", push, method="PATCH")
        repo = backend.repo
    else:
        repo = _RacingLocalRepo(backend.origin.path, push)

    with pytest.raises(NonFastForward):
        repo.commit({"docs/ours.md": b"ours\n"}, "ours", parent)
    assert pushed and backend.repo.head() == pushed[0]
    assert "docs/ours.md" not in backend.repo.read_tree("docs")


class _RacingLocalRepo(LocalGitRepo):
    """Runs `race` after the commit object is built, right before the ref update."""

    def __init__(self, path: Path, race: object) -> None:
        super().__init__(path)
        self._race = race

    def _commit_tree(self, tree: str, message: str, parents: list[str]) -> str:
        sha = super()._commit_tree(tree, message, parents)
        self._race()  # type: ignore[operator]
        return sha


BAD_PATHS = [
    "../escape.md", "docs/../../escape.md", "/etc/passwd", "docs\\sop.md", ".git/config",
    "docs/.GIT/hooks/pre-commit", "docs/a\0b.md", "", "docs//x.md", "docs/./x.md", "docs/",
]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_paths_outside_the_repo_are_rejected(backend: Backend, bad: str) -> None:
    head = backend.repo.head()
    with pytest.raises(ProviderError, match=r"invalid repository path: ") as refused:
        backend.repo.commit({"docs/fine.md": b"ok", bad: b"evil"}, "evil", head)
    assert repr(bad) in str(refused.value)  # the bad path is named, not the good one
    assert backend.repo.head() == head
    if backend.server is not None:  # rejected before any write reached the API
        assert not [r for r in backend.server.requests if r[0] in ("POST", "PATCH")]


def test_local_commit_updates_a_clean_work_tree(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "pb", FILES)
    repo.commit({"docs/intro.md": b"new\n", "docs/added.md": b"added\n"}, "c", repo.head())
    assert (tmp_path / "pb/docs/intro.md").read_bytes() == b"new\n"
    assert (tmp_path / "pb/docs/added.md").read_bytes() == b"added\n"
    assert repo.git("status", "--porcelain").decode() == ""


def test_local_commit_never_discards_uncommitted_edits(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "pb", FILES)
    (tmp_path / "pb/docs/intro.md").write_bytes(b"my unsaved edit\n")  # a file we change
    (tmp_path / "pb/README.md").write_bytes(b"my readme edit\n")  # a file we do not touch
    (tmp_path / "pb/docs/added.md").write_bytes(b"my untracked file\n")  # in the way of a new file

    new = repo.commit({"docs/intro.md": b"ours\n", "docs/added.md": b"ours\n"}, "c", repo.head())

    assert repo.head() == new  # the commit landed on the branch all the same
    assert repo.read_file("docs/intro.md") == b"ours\n"
    assert (tmp_path / "pb/docs/intro.md").read_bytes() == b"my unsaved edit\n"
    assert (tmp_path / "pb/README.md").read_bytes() == b"my readme edit\n"
    assert (tmp_path / "pb/docs/added.md").read_bytes() == b"my untracked file\n"


def test_local_commit_keeps_edits_to_untouched_files(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "pb", FILES)
    (tmp_path / "pb/README.md").write_bytes(b"my readme edit\n")
    repo.commit({"docs/intro.md": b"ours\n"}, "c", repo.head())
    assert (tmp_path / "pb/docs/intro.md").read_bytes() == b"ours\n"  # work tree moved on
    assert (tmp_path / "pb/README.md").read_bytes() == b"my readme edit\n"  # edit kept
    assert repo.git("status", "--porcelain").decode().split() == ["M", "README.md"]


def test_github_retries_a_5xx_once_then_succeeds(server: FakeGitHub) -> None:
    repo = _github(server)
    head = repo.head()
    server.fail_next("/git/commits", 500, count=1, method="POST")
    new = repo.commit({"docs/intro.md": b"retried\n"}, "c", head)
    assert server.count("POST", "/git/commits") == 2
    assert repo.head() == new
    assert server.git.git("rev-list", "--count", f"{head}..{new}").strip() == b"1"


def test_github_two_5xx_raise_transient_and_leave_the_ref(server: FakeGitHub) -> None:
    repo = _github(server)
    head = repo.head()
    server.fail_next("/git/refs/heads/main", 502, count=2, method="PATCH")
    with pytest.raises(TransientProviderError, match="502"):
        repo.commit({"docs/intro.md": b"never lands\n"}, "c", head)
    assert server.count("PATCH", "/git/refs/heads/main") == 2  # first try + one retry
    assert repo.head() == head
    assert server.git.git("rev-parse", "refs/heads/main").decode().strip() == head


@pytest.mark.parametrize("retries", [0, 1])
def test_github_ref_update_whose_answer_was_lost_still_counts(
    server: FakeGitHub, retries: int
) -> None:
    repo = _github(server, retries=retries)
    head = repo.head()
    server.fail_next("/git/refs/heads/main", 502, count=1, method="PATCH", after=True)
    new = repo.commit({"docs/intro.md": b"landed\n"}, "c", head)  # no error: it did land
    assert repo.head() == new
    assert server.git.git("log", "-1", "--format=%P", new).decode().split() == [head]


def test_github_retries_are_configurable(server: FakeGitHub) -> None:
    server.fail_next("/git/ref/heads/main", 503, count=3)
    with pytest.raises(TransientProviderError, match="503"):
        _github(server, retries=2).head()
    assert server.count("GET", "/git/ref/heads/main") == 3
    assert _github(server, retries=0).head()  # the faults are used up


def test_github_wrong_token_names_the_setting_and_hides_the_token(server: FakeGitHub) -> None:
    wrong = "ghp_WRONGwrongWRONG0987654321"
    repo = _github(server, token=wrong)
    with pytest.raises(ProviderError, match="PLAYBOOK_SYNC_GITHUB_TOKEN") as info:
        repo.head()
    assert not isinstance(info.value, TransientProviderError)  # never retried
    assert server.count("GET", "/git/ref/heads/main") == 1
    text = "".join(traceback.format_exception(info.value))
    assert "PLAYBOOK_SYNC_GITHUB_TOKEN" in str(info.value)
    assert wrong not in text and wrong not in repr(info.value) and wrong not in repr(repo)


def test_github_unknown_repo_names_the_repo_setting(server: FakeGitHub) -> None:
    repo = GitHubRepo("acme/nope", TOKEN, base_url=server.base_url, retry_backoff=0.0,
                      seconds_between_requests=None, seconds_between_writes=None)
    with pytest.raises(ProviderError, match="PLAYBOOK_SYNC_GITHUB_REPO") as info:
        repo.read_tree("docs")
    assert TOKEN not in str(info.value)


def test_github_retries_are_logged_and_every_token_an_error_echoes_is_scrubbed(
    server: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy's error page that echoes our token and another one (e.g. from a shared config).
    other = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
    server.fail_next("/git/ref/heads/main", 503, count=2, message=f"upstream refused {TOKEN} and {other}")
    with caplog.at_level("WARNING", logger="playbook_sync.providers.github"), \
            pytest.raises(TransientProviderError, match="503 upstream refused") as info:
        _github(server, retries=1).head()
    text = "".join(traceback.format_exception(info.value))
    assert TOKEN not in text and other not in text and "[redacted" in str(info.value)
    # One retry, logged with its wait (the same policy as the LLM providers': retry.retrying).
    retries = [r.getMessage() for r in caplog.records if r.name == "playbook_sync.providers.github"]
    assert retries == ["GitHub get ref failed transiently; retry 1/1 in 0.00s"]

