"""A playbook repository in a local git repository, written with git plumbing only."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from playbook_sync.faults import crash_point
from playbook_sync.providers.base import NonFastForward, ProviderError, TrailerSearch

log = logging.getLogger(__name__)

DEFAULT_AUTHOR_NAME = "playbook-sync"
DEFAULT_AUTHOR_EMAIL = "playbook-sync@users.noreply.github.com"
_ZERO_SHA = "0" * 40
_FILE_MODES = ("100644", "100755")


def safe_repo_path(path: str) -> str:
    """Return path if it is a plain relative path inside a repository, else raise ProviderError."""
    # Paths come from generated content; confine them before they reach git or the API.
    if not isinstance(path, str) or not path:
        raise ProviderError(f"invalid repository path: {path!r}")
    if "\\" in path or path.startswith("/") or any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise ProviderError(f"invalid repository path: {path!r}")
    for part in path.split("/"):
        # Case-insensitive .git: on macOS/Windows work trees ".GIT" is the git dir.
        if part in ("", ".", "..") or part.lower() == ".git":
            raise ProviderError(f"invalid repository path: {path!r}")
    return path


def normalize_root(root: str) -> str:
    """Strip slashes from a tree root; "" or "." means the whole repository."""
    root = root.strip("/")
    return "" if root in ("", ".") else safe_repo_path(root)


def _git_env(path: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # Drop inherited GIT_* (e.g. GIT_DIR/GIT_INDEX_FILE from a hook) so every call
    # targets exactly the repository and index we name.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    # Never search upward: a plain directory (or a broken .git) inside another repository
    # would otherwise make git read and commit to the enclosing repository.
    env["GIT_CEILING_DIRECTORIES"] = str(path.absolute().parent)
    env.update(extra or {})
    return env


class RepoPathError(ProviderError):
    """The configured directory is not itself a git repository (its top level, or a bare git dir)."""


class LocalGitRepo(TrailerSearch):
    """PlaybookRepo over a local (bare or non-bare) git repository."""

    def __init__(
        self,
        path: Path | str,
        branch: str = "main",
        author_name: str = DEFAULT_AUTHOR_NAME,
        author_email: str = DEFAULT_AUTHOR_EMAIL,
    ) -> None:
        self.path = Path(path)
        self.branch = branch
        self.author_name = author_name
        self.author_email = author_email
        self._confined = False

    def __repr__(self) -> str:
        return f"LocalGitRepo(path={str(self.path)!r}, branch={self.branch!r})"

    @property
    def ref(self) -> str:
        """The full ref name of the branch."""
        return f"refs/heads/{self.branch}"

    def git(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> bytes:
        """Run git in the repository and return stdout; ProviderError on failure."""
        if not self._confined:
            self.confine()
        return self._run(*args, input=input, env=env)

    def confine(self) -> None:
        """Raise RepoPathError unless the path is exactly a repository's top level (or a bare git dir)."""
        where = self.path.absolute()
        if not where.is_dir():
            raise RepoPathError(f"PLAYBOOK_SYNC_REPO_PATH: {where} does not exist or is not a directory")
        try:
            bare = self._run("rev-parse", "--is-bare-repository").strip() == b"true"
            found = self._run("rev-parse", "--absolute-git-dir" if bare else "--show-toplevel")
        except ProviderError:
            raise RepoPathError(f"PLAYBOOK_SYNC_REPO_PATH: {where} is not a git repository "
                                "(git found no .git here, or its .git is broken)") from None
        top = Path(os.fsdecode(found.rstrip(b"\n")))
        if top.resolve() != where.resolve():
            raise RepoPathError(f"PLAYBOOK_SYNC_REPO_PATH: {where} is not the top level of its git repository ({top})")
        self._confined = True

    def _run(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> bytes:
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=input,
            capture_output=True,
            env=_git_env(self.path, env),
            check=False,
        )
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise ProviderError(f"git {args[0]} failed in {self.path}: {err}")
        return proc.stdout

    def _rev(self, rev: str) -> str | None:
        try:
            return self.git("rev-parse", "-q", "--verify", f"{rev}^{{commit}}").decode().strip()
        except RepoPathError:
            raise  # a misconfigured repository is not an unknown revision
        except ProviderError:
            return None

    def head(self) -> str:
        """The commit sha at the branch head."""
        sha = self._rev(self.ref)
        if sha is None:
            raise ProviderError(f"branch {self.branch!r} not found in {self.path}")
        return sha

    def read_tree(self, root: str, ref: str | None = None) -> dict[str, bytes]:
        """Every regular file under root at ref (default head): path → bytes."""
        root = normalize_root(root)
        commit = self.head() if ref is None else self._rev(ref)
        if commit is None:
            raise ProviderError(f"unknown ref {ref!r} in {self.path}")
        args = ["ls-tree", "-r", "-z", "--full-tree", commit]
        listing = self.git(*args, "--", root) if root else self.git(*args)
        entries: list[tuple[str, str]] = []
        for record in listing.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, sha = meta.decode().split(" ")
            path = raw_path.decode("utf-8", "surrogateescape")
            # Symlinks and submodules are not playbook files.
            if kind == "blob" and mode in _FILE_MODES and _under(path, root):
                entries.append((path, sha))
        blobs = self._cat_blobs([sha for _, sha in entries])
        return {path: blobs[sha] for path, sha in entries}

    def read_file(self, path: str, ref: str | None = None) -> bytes | None:
        """One file's bytes at ref (default head), or None when absent."""
        path = safe_repo_path(path)
        commit = self.head() if ref is None else self._rev(ref)
        if commit is None:
            raise ProviderError(f"unknown ref {ref!r} in {self.path}")
        try:
            return self.git("cat-file", "blob", f"{commit}:{path}")
        except ProviderError:
            return None

    def _cat_blobs(self, shas: list[str]) -> dict[str, bytes]:
        # One `cat-file --batch` process for all blobs, not one process per file.
        unique = list(dict.fromkeys(shas))
        if not unique:
            return {}
        out = self.git("cat-file", "--batch", input="".join(s + "\n" for s in unique).encode())
        result: dict[str, bytes] = {}
        pos = 0
        for sha in unique:
            eol = out.index(b"\n", pos)
            header = out[pos:eol].decode().split(" ")
            if len(header) != 3:
                raise ProviderError(f"git cat-file: missing object {sha}")
            size = int(header[2])
            result[sha] = out[eol + 1 : eol + 1 + size]
            pos = eol + 1 + size + 1  # content is followed by a newline
        return result

    def paths_ever(self, root: str) -> set[str]:
        """Every path under root that any commit of the branch ever added (deleted and renamed ones too)."""
        root = normalize_root(root)
        # One process over the whole history: cheap for a git repository (unlike one API call per commit).
        out = self.git("log", "--no-renames", "--diff-filter=A", "--name-only", "--format=", "-z", self.ref,
                       "--", *([root] if root else []))
        return {name.strip(b"\n").decode("utf-8", "surrogateescape") for name in out.split(b"\0") if name.strip(b"\n")}

    def log_messages(self, limit: int = 50) -> list[tuple[str, str]]:
        """(sha, full message) of the last limit commits on the branch, newest first."""
        out = self.git("log", "-z", f"-n{int(limit)}", "--format=%H%n%B", self.ref, "--")
        result = []
        for record in out.decode("utf-8", "replace").split("\0"):
            if record:
                sha, _, message = record.partition("\n")
                result.append((sha, message))
        return result

    def commit(self, files: Mapping[str, bytes | None], message: str, parent: str) -> str:
        """One atomic commit of files (None deletes) on parent; NonFastForward if head moved."""
        checked = {safe_repo_path(p): _check_content(p, c) for p, c in files.items()}
        parent_sha = self._rev(parent)
        if parent_sha is None:
            raise ProviderError(f"parent {parent!r} is not a commit in {self.path}")
        if self.head() != parent_sha:
            raise NonFastForward(f"{self.ref} moved past {parent_sha[:12]}")
        tree = self._build_tree(checked, parent_sha)
        new = self._commit_tree(tree, message, [parent_sha])
        try:
            # Compare-and-swap: git refuses unless the ref still points at parent.
            self.git("update-ref", "-m", "playbook-sync", self.ref, new, parent_sha)
        except ProviderError:
            if self._rev(self.ref) != parent_sha:
                raise NonFastForward(f"{self.ref} moved past {parent_sha[:12]}") from None
            raise
        crash_point("after-update-ref")
        self._sync_worktree(parent_sha, new)
        return new

    def sync_worktree(self, sha: str) -> None:
        """Bring a checkout of the branch up to sha when sha is the branch head.

        For a run adopted after its worker died between moving the branch and updating the
        work tree: the index and files still show the parent, and a person's next
        `git commit -a` would revert the run's callouts.
        """
        parent = self.parent_of(sha)
        if parent is not None and self._rev(self.ref) == sha:
            self._sync_worktree(parent, sha)

    def for_branch(self, branch: str) -> LocalGitRepo:
        """The same repository, reading and committing on another branch."""
        return LocalGitRepo(self.path, branch, self.author_name, self.author_email)

    def branch_head(self, branch: str) -> str | None:
        """The commit sha at refs/heads/branch, or None when the branch does not exist."""
        return self._rev(f"refs/heads/{branch}")

    def parent_of(self, sha: str) -> str | None:
        """The first parent of a commit (None for a root commit)."""
        return self._rev(f"{sha}^")

    def set_branch(self, branch: str, sha: str) -> None:
        """Point refs/heads/branch at sha, creating it or moving it."""
        safe_repo_path(branch)
        self.git("update-ref", "-m", "playbook-sync", f"refs/heads/{branch}", sha)

    def _build_tree(self, files: Mapping[str, bytes | None], parent: str | None) -> str:
        # A private index file: the user's index and work tree are never touched.
        with tempfile.TemporaryDirectory(prefix="playbook-sync-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self.git("read-tree", parent, env=env)
            writes = [(p, c) for p, c in files.items() if c is not None]
            # Blob files on disk let one `hash-object --stdin-paths` write all blobs;
            # --no-filters keeps the bytes exact (no autocrlf or attribute filters).
            names = []
            for i, (_, content) in enumerate(writes):
                name = Path(tmp) / f"blob-{i}"
                name.write_bytes(content)  # type: ignore[arg-type]
                names.append(str(name))
            shas = (
                self.git(
                    "hash-object", "-w", "--no-filters", "--stdin-paths",
                    input="".join(n + "\n" for n in names).encode(),
                ).decode().split()
                if names
                else []
            )
            lines = [f"100644 {sha}\t{p}" for (p, _), sha in zip(writes, shas, strict=True)]
            lines += [f"0 {_ZERO_SHA}\t{p}" for p, c in files.items() if c is None]
            if lines:
                info = "".join(line + "\0" for line in lines).encode("utf-8", "surrogateescape")
                self.git("update-index", "-z", "--index-info", input=info, env=env)
            return self.git("write-tree", env=env).decode().strip()

    def _commit_tree(self, tree: str, message: str, parents: list[str]) -> str:
        env = {
            "GIT_AUTHOR_NAME": self.author_name,
            "GIT_AUTHOR_EMAIL": self.author_email,
            "GIT_COMMITTER_NAME": self.author_name,
            "GIT_COMMITTER_EMAIL": self.author_email,
        }
        # A bot commit must not try to sign with a human's key (commit.gpgSign would
        # make commit-tree prompt or fail on a headless worker).
        args = ["commit-tree", "--no-gpg-sign", tree]
        for p in parents:
            args += ["-p", p]
        return self.git(*args, input=message.encode(), env=env).decode().strip()

    def _sync_worktree(self, old: str, new: str) -> None:
        """Bring a checked-out work tree from old to new, keeping any local edits."""
        if self.git("rev-parse", "--is-bare-repository").strip() == b"true":
            return
        try:
            if self.git("symbolic-ref", "-q", "HEAD").decode().strip() != self.ref:
                return
        except ProviderError:  # detached HEAD
            return
        try:
            self.git("update-index", "-q", "--refresh")
        except ProviderError:
            pass  # exits non-zero when files are modified; read-tree decides below
        try:
            # Two-tree merge = what `git checkout` does: it refuses (and changes
            # nothing) if a changed path has local edits or an untracked file.
            self.git("read-tree", "-m", "-u", old, new)
        except ProviderError as exc:
            log.warning("committed %s but left the work tree alone: %s", new[:12], exc)


def _under(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + "/")


def _check_content(path: str, content: bytes | None) -> bytes | None:
    if content is not None and not isinstance(content, bytes):
        raise ProviderError(f"content for {path!r} must be bytes, got {type(content).__name__}")
    return content


def init_repo(
    path: Path | str,
    files: Mapping[str, bytes],
    branch: str = "main",
    message: str = "Initial playbook",
    *,
    bare: bool = False,
    author_name: str = DEFAULT_AUTHOR_NAME,
    author_email: str = DEFAULT_AUTHOR_EMAIL,
) -> LocalGitRepo:
    """Create a git repository at path whose branch has one commit holding files."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise ProviderError(f"{path} exists and is not empty")
    path.mkdir(parents=True, exist_ok=True)
    repo = LocalGitRepo(path, branch, author_name, author_email)
    repo._run("init", "-q", *(["--bare"] if bare else []), f"--initial-branch={branch}")
    checked = {safe_repo_path(p): _check_content(p, c) for p, c in files.items()}
    tree = repo._build_tree(checked, None)
    sha = repo._commit_tree(tree, message, [])
    repo.git("update-ref", repo.ref, sha, _ZERO_SHA)  # zero old value: must not exist yet
    if not bare:
        repo.git("read-tree", "-m", "-u", sha)  # fresh, empty work tree: just check it out
    return repo
