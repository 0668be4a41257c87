"""The provider protocols and their errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from playbook_sync.schemas import (
    CalloutDraft,
    CalloutRequest,
    ClassifyRequest,
    Decision,
    Entry,
    NewSopRequest,
    SopDraft,
)


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

    def commit(self, files: dict[str, bytes], message: str, parent: str) -> str:
        """One atomic commit of files on top of parent; raise NonFastForward if head moved."""
        ...


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
