"""The provider protocols and their errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from playbook_sync.schemas import (
    CalloutDraft,
    CalloutRequest,
    ClassifyRequest,
    Decision,
    Entry,
    NewSopRequest,
    SopDraft,
    SopEditRequest,
)

if TYPE_CHECKING:
    from playbook_sync.costs import Usage


class ProviderError(Exception):
    """A provider call failed for good: bad input, bad output, auth. Never retried."""


class TransientProviderError(ProviderError):
    """A provider call failed in a way worth retrying (429, 5xx, timeout)."""


class NonFastForward(Exception):
    """The branch moved since we read it; re-read the head and re-apply."""


@runtime_checkable
class Embedder(Protocol):
    model: str
    dimensions: int
    max_batch: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed up to max_batch texts in one request."""
        ...


@runtime_checkable
class LLM(Protocol):
    def classify(self, request: ClassifyRequest) -> list[Decision]:
        """One call per entry: a decision for every candidate."""
        ...

    def write_callout(self, request: CalloutRequest) -> CalloutDraft:
        """1-3 sentences merging the entries for one section."""
        ...

    def name_cluster(self, entries: Sequence[Entry]) -> str:
        """A short topic label for a cluster of orphan entries."""
        ...

    def draft_sop(self, request: NewSopRequest) -> SopDraft:
        """A structured draft for a new SOP."""
        ...


@runtime_checkable
class PlaybookRepo(Protocol):
    branch: str

    def head(self) -> str:
        """The commit sha at the branch head."""
        ...

    def read_tree(self, root: str, ref: str | None = None) -> dict[str, bytes]:
        """Every file under root at ref (default head): path → bytes."""
        ...

    def find_commit_with_trailer(self, trailer: str, limit: int = 50) -> str | None:
        """The sha of a recent commit on the branch whose message holds trailer."""
        ...

    def commit(self, files: Mapping[str, bytes | None], message: str, parent: str) -> str:
        """One atomic commit of files on top of parent (None deletes); raise NonFastForward if head moved."""
        ...


# -- optional capabilities: checked with isinstance, so a provider that has them is used fully --------


@runtime_checkable
class FromSettings(Protocol):
    """A custom provider class (`module:Class`) that builds itself from the settings."""

    @classmethod
    def from_settings(cls, settings: Any) -> Any: ...


@runtime_checkable
class SopEditor(Protocol):
    """An LLM that writes all of an SOP's callouts in one call (ours do); others get one call per block."""

    def write_callouts(self, request: SopEditRequest) -> dict[str, CalloutDraft]:
        """Block key → draft, one per block of the request."""
        ...


@runtime_checkable
class TokenBudget(Protocol):
    """An embedder that also limits the tokens per request (OpenAI): batches are cut by both."""

    max_batch_tokens: int

    def count_tokens(self, text: str) -> int: ...


class BatchAnswer(Protocol):
    """One entry's outcome in an ended batch."""

    custom_id: str
    decisions: list[Decision] | None
    error: str | None
    usage: Usage | None
    model: str


@runtime_checkable
class BatchClassifier(Protocol):
    """An LLM that can classify a run's entries as one asynchronous batch (Anthropic Message Batches)."""

    provider: str

    def submit_classifications(self, requests: Mapping[str, ClassifyRequest]) -> str:
        """Submit custom id → request as one batch; return the batch id."""
        ...

    def batch_status(self, batch_id: str) -> str:
        """The batch's processing status ("ended" when its results can be read)."""
        ...

    def classification_results(self, batch_id: str, requests: Mapping[str, ClassifyRequest]) -> Iterator[BatchAnswer]:
        """The ended batch's answers, one per custom id."""
        ...


@runtime_checkable
class FileReader(Protocol):
    """A repository that reads one file without listing a tree."""

    def read_file(self, path: str, ref: str | None = None) -> bytes | None: ...


@runtime_checkable
class CommitParents(Protocol):
    """A repository that knows a commit's first parent (the report diffs against it)."""

    def parent_of(self, sha: str) -> str | None: ...


@runtime_checkable
class PathHistory(Protocol):
    """A repository whose history of paths is cheap to read (a local clone; not the GitHub API)."""

    def paths_ever(self, root: str) -> set[str]: ...


@runtime_checkable
class CheckedOut(Protocol):
    """A repository with a work tree that should follow its branch (a local checkout)."""

    def sync_worktree(self, sha: str) -> None: ...


class PullRequest(Protocol):
    number: int
    url: str
    body: str
    head_sha: str


@runtime_checkable
class BranchingRepo(PlaybookRepo, FileReader, CommitParents, Protocol):
    """A repository with other branches and pull requests: what publish.PullRequestRepo builds on."""

    def for_branch(self, branch: str) -> BranchingRepo:
        """The same repository, reading and committing on another branch."""
        ...

    def branch_head(self, branch: str) -> str | None:
        """A branch's head sha, None when the branch does not exist."""
        ...

    def set_branch(self, branch: str, sha: str) -> None:
        """Create or move a branch to sha."""
        ...

    def pull_requests(self, head: str, state: str = "open") -> Sequence[PullRequest]:
        """Pull requests from head into this branch."""
        ...

    def create_pull_request(self, title: str, body: str, head: str) -> PullRequest: ...

    def edit_pull_request(self, number: int, *, title: str | None = None, body: str | None = None) -> PullRequest: ...


class TrailerSearch:
    """find_commit_with_trailer for any repo that can list its recent commit messages."""

    def log_messages(self, limit: int = 50) -> list[tuple[str, str]]:
        """(sha, full message) of the last limit commits on the branch, newest first."""
        raise NotImplementedError

    def find_commit_with_trailer(self, trailer: str, limit: int = 50) -> str | None:
        """The sha of a recent commit whose message has trailer as a whole line."""
        want = trailer.strip()
        for sha, message in self.log_messages(limit):
            if any(line.strip() == want for line in message.splitlines()):
                return sha
        return None
