"""Dry run: every step of a real run against the live playbook and data, then nothing kept.

The run goes through `pipeline.run_inline` in this process. Every session the pipeline opens
is bound to one connection whose outer transaction is rolled back at the end; with
`join_transaction_mode="create_savepoint"` the pipeline's own `commit()` calls only release
savepoints. So the run row, its items, matches, clusters, the embedding cache updates and
the window all vanish. The repository is wrapped so that `commit()` captures the files
instead of writing them; pull requests and the deploy webhook are skipped. What is kept:
the printed diffs and the run report (HTML + JSON) in the reports directory.

A dry run holds the run lock (its uncommitted 'running' row) while it runs: a real run
started meanwhile waits for it, and a dry run is refused while a real run is running.
With deterministic providers a real run over the same data makes exactly these changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from playbook_sync import pipeline, report
from playbook_sync.config import Settings
from playbook_sync.db import committing, get_engine
from playbook_sync.deps import Deps
from playbook_sync.providers.base import FileReader, PathHistory, PlaybookRepo

DRY_RUN_SHA = "d" * 40  # stands in for the commit a real run would make


class DryRunRepo:
    """A PlaybookRepo that reads through to the real one and captures the commit instead of making it."""

    def __init__(self, inner: PlaybookRepo) -> None:
        self.inner = inner
        self.branch = inner.branch
        self.files: dict[str, bytes | None] = {}
        self.message: str | None = None
        self.parent: str | None = None

    def head(self) -> str:
        """The real head."""
        return self.inner.head()

    def read_tree(self, root: str, ref: str | None = None) -> dict[str, bytes]:
        """The real tree; at the captured commit, the parent's tree with the captured files on top."""
        if ref != DRY_RUN_SHA:
            return self.inner.read_tree(root, ref)
        tree = dict(self.inner.read_tree(root, self.parent))
        prefix = root.strip("/") + "/" if root.strip("/") else ""
        for path, content in self.files.items():
            if path.startswith(prefix):
                if content is None:
                    tree.pop(path, None)
                else:
                    tree[path] = content
        return tree

    def read_file(self, path: str, ref: str | None = None) -> bytes | None:
        """One file, as read_tree sees it."""
        if ref == DRY_RUN_SHA and path in self.files:
            return self.files[path]
        ref = self.parent if ref == DRY_RUN_SHA else ref
        if isinstance(self.inner, FileReader):
            return self.inner.read_file(path, ref)
        return self.inner.read_tree(path.rpartition("/")[0], ref).get(path)

    def parent_of(self, sha: str) -> str | None:
        """The captured commit's parent, else the real one's."""
        return self.parent if sha == DRY_RUN_SHA else self.inner.parent_of(sha)

    def paths_ever(self, root: str) -> set[str]:
        """Reads through, so a dry run numbers new SOPs as the real run would."""
        return self.inner.paths_ever(root) if isinstance(self.inner, PathHistory) else set()

    def find_commit_with_trailer(self, trailer: str, limit: int = 50) -> str | None:
        """Reads through (a dry run's own trailer is never on the branch)."""
        return self.inner.find_commit_with_trailer(trailer, limit)

    def commit(self, files: Mapping[str, bytes | None], message: str, parent: str) -> str:
        """Capture what would be committed."""
        self.files, self.message, self.parent = dict(files), message, parent
        return DRY_RUN_SHA


@dataclass
class DryRunDeps(Deps):
    """Deps whose sessions all join one outer transaction that the dry run rolls back."""

    connection: Connection | None = None

    def session(self):
        """A session inside the outer transaction; its commit() releases a savepoint."""
        return committing(Session(bind=self.connection, join_transaction_mode="create_savepoint", expire_on_commit=False))


@dataclass
class DryRun:
    """What a dry run found."""

    summary: dict
    diffs: dict[str, str] = field(default_factory=dict)  # path → unified diff
    files: dict[str, bytes | None] = field(default_factory=dict)  # path → content a real run would commit
    message: str | None = None
    report_paths: tuple[Path, Path] | None = None


def dry_run(settings: Settings, *, now: datetime | None = None) -> DryRun:
    """Run everything, capture the commit and the report, keep nothing else."""
    # No webhook, and classification inline (a batch would outlive the transaction).
    quiet = settings.model_copy(update={"deploy_webhook_url": None, "llm_batch": False})
    real = Deps.from_settings(quiet)
    repo = DryRunRepo(real.repo)
    with get_engine(settings.database_url).connect() as connection:
        outer = connection.begin()
        try:
            parts = {f.name: getattr(real, f.name) for f in fields(Deps)} | {"repo": repo}
            deps = DryRunDeps(**parts, connection=connection)
            summary = pipeline.run_inline(deps, trigger="dry-run", now=now)
        finally:
            outer.rollback()
    diffs = {}
    for path, content in sorted(repo.files.items()):
        old = repo.inner.read_file(path, repo.parent) if isinstance(repo.inner, FileReader) else None
        diffs[path] = report.diff_text(path, None if old is None else old.decode("utf-8", "replace"),
                                       None if content is None else content.decode("utf-8", "replace"))
    paths = report.paths_for(settings, summary["run_id"]) if "run_id" in summary else None
    return DryRun(summary, diffs, dict(repo.files), repo.message,
                  paths if paths and paths[1].exists() else None)

