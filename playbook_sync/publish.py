"""Where a run's commit goes: straight onto the branch, or onto a review branch with a pull request.

Pull request mode (settings.publish = "pull_request"): a run commits to one review branch
(settings.pull_request_branch, default `playbook-sync/updates`) and opens a pull request into
settings.branch with the changelog as its body. While that pull request is open, every
later run adds its commit to the same branch and appends its changelog to the same body.
When it is closed (merged or not), the next run starts the branch again from the base
branch's head. A branch that holds commits no pull request has seen yet (opening the pull
request failed) is carried forward and the next run opens the pull request for it.

After a commit lands, an optional deploy webhook is POSTed; its failure is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from playbook_sync import learning_metrics, lifecycle
from playbook_sync.changelog import trailer
from playbook_sync.providers.base import BranchingRepo, NonFastForward, PlaybookRepo

if TYPE_CHECKING:
    from pydantic import SecretStr
    from sqlalchemy.orm import Session

    from playbook_sync.config import Settings
    from playbook_sync.models import SyncRun

log = logging.getLogger(__name__)
SEPARATOR = "\n\n---\n\n"
WEBHOOK_TIMEOUT = 10


def wrap_repo(repo: PlaybookRepo, settings: Settings) -> PlaybookRepo:
    """The repository the pipeline should write to under settings.publish."""
    if settings.publish == "commit":
        return repo
    if settings.publish != "pull_request":
        raise ValueError(f"unknown publish mode {settings.publish!r}; set PLAYBOOK_SYNC_PUBLISH to commit or pull_request")
    if not isinstance(repo, BranchingRepo):
        raise ValueError("PLAYBOOK_SYNC_PUBLISH=pull_request needs a GitHub playbook (PLAYBOOK_SYNC_PLAYBOOK=github)")
    return PullRequestRepo(repo, settings.pull_request_branch)


class PullRequestRepo:
    """A PlaybookRepo whose reads and commits happen on the review branch (see module docstring)."""

    def __init__(self, base: BranchingRepo, review_branch: str) -> None:
        if review_branch == base.branch:
            raise ValueError("the pull request branch must differ from the base branch")
        self.base = base
        self.branch = review_branch
        self.work = base.for_branch(review_branch)

    def __repr__(self) -> str:
        return f"PullRequestRepo({self.base!r}, review_branch={self.branch!r})"

    def open_pull_request(self):
        """The open sync pull request, if any."""
        pulls = self.base.pull_requests(self.branch, state="open")
        return pulls[0] if pulls else None

    def _continue_branch(self) -> str | None:
        """The review branch head if the next commit belongs on it, else None (start from base)."""
        work_head = self.base.branch_head(self.branch)
        if work_head is None:
            return None
        if self.open_pull_request() is not None:
            return work_head
        reviewed = any(p.head_sha == work_head for p in self.base.pull_requests(self.branch, state="closed"))
        return None if reviewed else work_head

    def head(self) -> str:
        """Where this run builds: the review branch while its pull request is open, else the base head."""
        return self._continue_branch() or self.base.head()

    def read_tree(self, root: str, ref: str | None = None) -> dict[str, bytes]:
        """Every file under root at ref (default: head())."""
        return self.base.read_tree(root, ref or self.head())

    def read_file(self, path: str, ref: str | None = None) -> bytes | None:
        """One file at ref (default: head())."""
        return self.base.read_file(path, ref or self.head())

    def parent_of(self, sha: str) -> str | None:
        """The first parent of a commit."""
        return self.base.parent_of(sha)

    def find_commit_with_trailer(self, trailer_line: str, limit: int = 50) -> str | None:
        """A commit with the trailer on the review branch, else on the base branch (merged)."""
        if self.base.branch_head(self.branch) is not None:
            found = self.work.find_commit_with_trailer(trailer_line, limit)
            if found:
                return found
        return self.base.find_commit_with_trailer(trailer_line, limit)

    def commit(self, files: Mapping[str, bytes | None], message: str, parent: str) -> str:
        """Commit onto the review branch, first creating it (or restarting it) at parent when head() said so."""
        work_head = self.base.branch_head(self.branch)
        if work_head != parent:
            if self.head() != parent:
                raise NonFastForward(f"{self.branch} or {self.base.branch} moved during the run")
            self.base.set_branch(self.branch, parent)  # new branch, or a reviewed one started afresh
        return self.work.commit(files, message, parent)

    def publish(self, run_id: str, changelog: str) -> str:
        """Open the sync pull request, or append this run's changelog to the open one; return its URL."""
        pull = self.open_pull_request()
        if pull is None:
            title = f"playbook-sync: playbook updates ({datetime.now(UTC):%Y-%m-%d})"
            intro = "Knowledge from calls, added by playbook-sync. Each run below is one commit on this branch."
            return self.base.create_pull_request(title, f"{intro}{SEPARATOR}{changelog}", self.branch).url
        if trailer(run_id) not in pull.body:  # a repeated finalize must not append twice
            self.base.edit_pull_request(pull.number, body=f"{pull.body.rstrip()}{SEPARATOR}{changelog}")
        return pull.url


def after_commit(session: Session, repo: PlaybookRepo, run: SyncRun, webhook_url: SecretStr | None) -> None:
    """Open/update the pull request and POST the deploy webhook for a run that committed; never raises."""
    if not run.commit_sha:
        return
    if isinstance(repo, PullRequestRepo) and not run.pull_request_url:
        try:
            # commit_message is lost when finalize died between the commit and its own DB commit.
            suggested = learning_metrics.suggestions(session)  # issue 14: step-text proposals, in the body only
            run.pull_request_url = repo.publish(str(run.id), (run.commit_message or trailer(run.id)) + suggested)
        except Exception as exc:  # the commit is on the branch; the next run opens the pull request
            log.warning("pull request for run %s not opened: %s", run.id, exc, extra={"run_id": str(run.id)})
            lifecycle.append_log(run, f"pull request not opened: {exc}")
    post_webhook(webhook_url.get_secret_value() if webhook_url else None, webhook_payload(run, repo.branch))


def webhook_payload(run: SyncRun, branch: str) -> dict:
    """The JSON body sent to the deploy webhook."""
    return {
        "event": "playbook_sync.commit", "run_id": str(run.id), "status": run.status,
        "commit_sha": run.commit_sha, "branch": branch, "pull_request_url": run.pull_request_url,
        "sops_enriched": list(run.sops_enriched or []), "sops_created": list(run.sops_created or []),
    }


def post_webhook(url: str | None, payload: dict) -> bool:
    """POST payload to url; log (host only: hook URLs embed secrets) and return False on failure."""
    if not url:
        return False
    host = urlsplit(url).hostname or "?"
    try:
        response = requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT)
        response.raise_for_status()
    except requests.RequestException as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        log.warning("deploy webhook to %s failed (%s)", host, status or type(exc).__name__,
                    extra={"run_id": payload.get("run_id")})
        return False
    log.info("deploy webhook to %s answered %s", host, response.status_code, extra={"run_id": payload.get("run_id")})
    return True
