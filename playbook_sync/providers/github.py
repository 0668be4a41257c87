"""A playbook repository on GitHub, written through the Git Data API (PyGithub)."""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import requests
from github import (
    Auth,
    Github,
    GithubException,
    InputGitAuthor,
    InputGitTreeElement,
    UnknownObjectException,
)
from github.GitRef import GitRef
from github.Repository import Repository

from playbook_sync.providers import retry
from playbook_sync.providers.base import (
    NonFastForward,
    ProviderError,
    TrailerSearch,
    TransientProviderError,
)
from playbook_sync.providers.localgit import (
    DEFAULT_AUTHOR_EMAIL,
    DEFAULT_AUTHOR_NAME,
    normalize_root,
    safe_repo_path,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_TOKEN_HINT = "check PLAYBOOK_SYNC_GITHUB_TOKEN (a fine-grained token with contents: write)"
_REPO_HINT = "check PLAYBOOK_SYNC_GITHUB_REPO (owner/name) and PLAYBOOK_SYNC_BRANCH"
_BLOB_CACHE_MAX = 4096
_RETRY_MAX_SECONDS = 30.0  # longest single wait between two tries of one API call


def _transient(exc: BaseException) -> bool:
    """Worth another try: 429, 5xx, a dropped connection or a timeout (a rate-limit 403 waits for the task)."""
    if isinstance(exc, GithubException):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


class GitHubRepo(TrailerSearch):
    """PlaybookRepo over a GitHub repository: blobs → tree → commit → ref update."""

    def __init__(
        self,
        full_name: str,
        token: str | None,
        branch: str = "main",
        base_url: str = "https://api.github.com",
        author_name: str = DEFAULT_AUTHOR_NAME,
        author_email: str = DEFAULT_AUTHOR_EMAIL,
        retries: int = 1,
        *,
        retry_backoff: float = 1.0,
        timeout: int = 15,
        seconds_between_requests: float | None = 0.25,
        seconds_between_writes: float | None = 1.0,
    ) -> None:
        self.full_name = full_name
        self.branch = branch
        self.base_url = base_url.rstrip("/")
        self.author_name = author_name
        self.author_email = author_email
        self.retries = retries
        self.retry_backoff = retry_backoff
        # The token goes to PyGithub's auth object (which masks it in its own repr);
        # we keep only a private copy for redaction and never format it anywhere.
        self._gh = Github(
            auth=Auth.Token(token) if token else None,
            base_url=self.base_url,
            timeout=timeout,
            retry=None,  # we retry ourselves: only transient errors, `retries` times
            seconds_between_requests=seconds_between_requests,
            seconds_between_writes=seconds_between_writes,
            lazy=True,  # get_repo makes no request; the first real call reports auth errors
        )
        self._secret = token or ""
        self._repo_obj: Repository | None = None
        self._blobs: dict[str, bytes] = {}  # keyed by blob sha, so entries never go stale

    def __repr__(self) -> str:
        return f"GitHubRepo({self.full_name!r}, branch={self.branch!r}, base_url={self.base_url!r})"

    # -- error handling --------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one API call; retry transient failures `retries` times (retry.retrying), map errors."""
        policy = retry.RetryPolicy(self.retries, self.retry_backoff, _RETRY_MAX_SECONDS)

        def log_retry(exc: BaseException, attempt: int, delay: float) -> None:
            log.warning("GitHub %s failed transiently; retry %d/%d in %.2fs", what, attempt, self.retries, delay)

        try:
            return retry.retrying(policy, transient=_transient, on_retry=log_retry)(fn)
        # The originals may quote request details; ours are clean.
        except GithubException as exc:
            raise self._map_error(what, exc) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientProviderError(self._redact(f"GitHub {what}: {type(exc).__name__}")) from None

    def _map_error(self, what: str, exc: GithubException) -> ProviderError:
        status = exc.status
        message = exc.data.get("message", "") if isinstance(exc.data, dict) else ""
        detail = f"GitHub {what} failed: {status} {message}".strip()
        if status == 401:
            text = f"{detail}; the token was rejected, {_TOKEN_HINT}"
            return ProviderError(self._redact(text))
        if status == 403 and "rate limit" in message.lower():
            return TransientProviderError(self._redact(detail))
        if status == 403:
            text = f"{detail}; the token lacks access to {self.full_name}, {_TOKEN_HINT}"
            return ProviderError(self._redact(text))
        if status == 404:
            text = (f"{detail}; {self.full_name} (branch {self.branch!r}) is missing or not "
                    f"visible to the token: {_REPO_HINT}, and {_TOKEN_HINT}")
            return ProviderError(self._redact(text))
        if status == 429 or status >= 500:
            return TransientProviderError(self._redact(detail))
        return ProviderError(self._redact(detail))

    def _redact(self, text: str) -> str:
        # Belt and braces: our messages never include the token, but a server's might echo it.
        return retry.redact(text, (self._secret,))

    # -- reads -----------------------------------------------------------------

    @property
    def _repo(self) -> Repository:
        if self._repo_obj is None:
            self._repo_obj = self._gh.get_repo(self.full_name)
        return self._repo_obj

    def _ref(self) -> GitRef:
        def fetch() -> GitRef:
            ref = self._repo.get_git_ref(f"heads/{self.branch}")
            _ = ref.object.sha  # forces the GET; the response also fixes ref.url for PATCH
            return ref

        return self._call("get ref", fetch)

    def head(self) -> str:
        """The commit sha at the branch head."""
        return self._ref().object.sha

    def _tree_sha(self, commit_sha: str) -> str:
        return self._call("get commit", lambda: self._repo.get_git_commit(commit_sha).tree.sha)

    def read_tree(self, root: str, ref: str | None = None) -> dict[str, bytes]:
        """Every regular file under root at ref (default head): path → bytes."""
        return {path: self._blob(sha) for path, sha in self._list(root, ref).items()}

    def _list(self, root: str, ref: str | None) -> dict[str, str]:
        """Regular files under root at ref: path → blob sha."""
        root = normalize_root(root)
        tree_sha = self._tree_sha(ref or self.head())
        tree = self._call("get tree", lambda: self._repo.get_git_tree(tree_sha, recursive=True))
        prefix = ""
        if tree.truncated and root:
            # Huge repository: list only the subtree under root.
            prefix, tree_sha = root + "/", self._subtree_sha(tree_sha, root)
            tree = self._call("get tree", lambda: self._repo.get_git_tree(tree_sha, recursive=True))
        if tree.truncated:
            where = f"{self.full_name}:{root or '/'}"
            raise ProviderError(f"GitHub tree listing of {where} is truncated")
        result: dict[str, str] = {}
        for element in tree.tree:
            path = prefix + element.path
            if element.type != "blob" or element.mode not in ("100644", "100755"):
                continue
            if not root or path == root or path.startswith(root + "/"):
                result[path] = element.sha
        return result

    def _subtree_sha(self, tree_sha: str, root: str) -> str:
        for part in root.split("/"):
            tree = self._call("get tree", lambda sha=tree_sha: self._repo.get_git_tree(sha))
            match = [e for e in tree.tree if e.path == part and e.type == "tree"]
            if not match:
                raise ProviderError(f"{root!r} is not a directory in {self.full_name}")
            tree_sha = match[0].sha
        return tree_sha

    def _blob(self, sha: str) -> bytes:
        if sha not in self._blobs:
            blob = self._call("get blob", lambda: self._repo.get_git_blob(sha))
            content = blob.content
            raw = base64.b64decode(content) if blob.encoding == "base64" else content.encode()
            if len(self._blobs) >= _BLOB_CACHE_MAX:
                self._blobs.clear()
            self._blobs[sha] = raw
        return self._blobs[sha]

    def read_file(self, path: str, ref: str | None = None) -> bytes | None:
        """One file's bytes at ref (default head), or None when absent."""
        path = safe_repo_path(path)
        sha = self._list(path.rpartition("/")[0], ref).get(path)
        return None if sha is None else self._blob(sha)

    def log_messages(self, limit: int = 50) -> list[tuple[str, str]]:
        """(sha, full message) of the last limit commits on the branch, newest first."""

        def fetch() -> list[tuple[str, str]]:
            commits = self._repo.get_commits(sha=self.branch)
            out = []
            for commit in commits:  # PaginatedList: pages are fetched as we iterate
                if len(out) >= limit:
                    break
                out.append((commit.sha, commit.commit.message))
            return out

        return self._call("list commits", fetch) if limit > 0 else []

    # -- the commit ------------------------------------------------------------

    def commit(self, files: Mapping[str, bytes | None], message: str, parent: str) -> str:
        """One atomic commit of files (None deletes) on parent; NonFastForward if head moved."""
        checked: dict[str, bytes | None] = {}
        for path, content in files.items():
            if content is not None and not isinstance(content, bytes):
                raise ProviderError(f"content for {path!r} must be bytes")
            checked[safe_repo_path(path)] = content
        ref = self._ref()
        if ref.object.sha != parent:
            raise NonFastForward(f"{self.branch} is at {ref.object.sha[:12]}, not {parent[:12]}")
        repo = self._repo
        parent_commit = self._call("get commit", lambda: repo.get_git_commit(parent))
        elements = [self._element(path, content) for path, content in checked.items()]
        # The parent's tree object is enough as base_tree: only its sha is sent.
        base = parent_commit.tree
        tree = self._call("create tree", lambda: repo.create_git_tree(elements, base))
        who = InputGitAuthor(self.author_name, self.author_email)
        new = self._call(
            "create commit",
            lambda: repo.create_git_commit(
                message, tree, [parent_commit], author=who, committer=who
            ),
        )
        try:
            # force=False: GitHub refuses anything that is not a fast-forward, so a
            # push that landed after our head check cannot be overwritten.
            self._call("update ref", lambda: ref.edit(new.sha, force=False))
        except ProviderError as exc:
            # The edit may have landed although its answer was lost (e.g. a 502).
            now = self.head()
            if now == new.sha:
                return new.sha
            if now != parent or "fast forward" in str(exc).lower():
                raise NonFastForward(f"{self.branch} moved to {now[:12]} during commit") from None
            raise
        return new.sha

    def _element(self, path: str, content: bytes | None) -> InputGitTreeElement:
        if content is None:
            return InputGitTreeElement(path, "100644", "blob", sha=None)  # null sha deletes
        try:
            payload, encoding = content.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(content).decode(), "base64"
        blob = self._call("create blob", lambda: self._repo.create_git_blob(payload, encoding))
        return InputGitTreeElement(path, "100644", "blob", sha=blob.sha)

    # -- branches and pull requests (publish = pull_request) ---------------------

    def for_branch(self, branch: str) -> GitHubRepo:
        """The same repository and client, reading and committing on another branch."""
        other = copy.copy(self)  # shares the client, the repo object and the blob cache
        other.branch = branch
        return other

    def branch_head(self, branch: str) -> str | None:
        """The commit sha at refs/heads/branch, or None when the branch does not exist."""
        def fetch() -> str | None:
            try:
                return self._repo.get_git_ref(f"heads/{branch}").object.sha
            except UnknownObjectException:
                return None  # a missing branch is an answer here, not an error

        return self._call("get ref", fetch)

    def parent_of(self, sha: str) -> str | None:
        """The first parent of a commit (None for a root commit)."""
        parents = self._call("get commit", lambda: self._repo.get_git_commit(sha).parents)
        return parents[0].sha if parents else None

    def set_branch(self, branch: str, sha: str) -> None:
        """Point refs/heads/branch at sha, creating it or moving it (forced: the branch is ours)."""
        safe_repo_path(branch)
        if self.branch_head(branch) is None:
            self._call("create ref", lambda: self._repo.create_git_ref(f"refs/heads/{branch}", sha))
        else:
            ref = self.for_branch(branch)._ref()
            self._call("update ref", lambda: ref.edit(sha, force=True))

    def pull_requests(self, head: str, state: str = "open") -> list[PullRequestInfo]:
        """Pull requests from branch `head` into this branch, newest first."""
        owner = self.full_name.split("/")[0]

        def fetch() -> list[PullRequestInfo]:
            pulls = self._repo.get_pulls(state=state, head=f"{owner}:{head}", base=self.branch)
            return sorted((_pull_info(p) for p in pulls), key=lambda p: -p.number)

        return self._call("list pull requests", fetch)

    def create_pull_request(self, title: str, body: str, head: str) -> PullRequestInfo:
        """Open a pull request from branch `head` into this branch."""
        pull = self._call("create pull request",
                          lambda: self._repo.create_pull(base=self.branch, head=head, title=title, body=body))
        return _pull_info(pull)

    def edit_pull_request(self, number: int, *, title: str | None = None, body: str | None = None) -> PullRequestInfo:
        """Change a pull request's title and/or body."""
        changes = {k: v for k, v in (("title", title), ("body", body)) if v is not None}

        def edit():
            pull = self._repo.get_pull(number)
            pull.edit(**changes)
            return pull

        return _pull_info(self._call("edit pull request", edit))


@dataclass(frozen=True)
class PullRequestInfo:
    """What the publisher needs to know about a pull request."""

    number: int
    url: str
    title: str
    body: str
    head_sha: str
    state: str
    merged: bool


def _pull_info(pull) -> PullRequestInfo:
    return PullRequestInfo(pull.number, pull.html_url, pull.title or "", pull.body or "", pull.head.sha,
                           pull.state, bool(pull.merged))
