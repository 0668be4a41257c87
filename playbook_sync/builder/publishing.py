"""Publish a playbook into the Docusaurus repository as an SOP, through the weekly run's commit path.

Where: the module with the highest number (new playbooks are the newest material), in the
folder where that module's SOPs live, numbered after the highest SOP number ever seen there
(new_sop's rules). How: one commit on the configured repository, wrapped as the run's is
(publish.wrap_repo: straight onto the branch, or onto the sync pull request's branch and
its pull request), with a changelog and a `Playbook-Builder-Playbook: <id>` trailer, after
the same checker `playbook-sync validate` uses passes on the new file. A moved branch is
re-read and the SOP placed again (as finalize rebases). From then on the weekly sync
enriches it like any SOP; that is also why a published playbook is not written over again.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy.orm import Session

from playbook_sync import new_sop, sops
from playbook_sync.builder import render
from playbook_sync.builder.service import _touch, owned, views
from playbook_sync.builder.tables import PlaybookRow
from playbook_sync.config import Settings
from playbook_sync.mdx import mdx_safe, mdx_text
from playbook_sync.providers.base import CommitParents, NonFastForward, PlaybookRepo

ATTEMPTS = 3
_MODULE = re.compile(r"module-(\d+)")


class PublishError(ValueError):
    """The playbook cannot be published (one sentence why)."""


def trailer(playbook_id: uuid.UUID) -> str:
    return f"Playbook-Builder-Playbook: {playbook_id}"


def _target_module(docs: dict[str, sops.SopDoc]) -> str:
    numbers = [int(m.group(1)) for d in docs.values() if d.module and (m := _MODULE.fullmatch(d.module))]
    return f"module-{max(numbers)}" if numbers else "module-1"


def place(view, tree: dict[str, bytes], docs_root: str) -> tuple[str, str]:
    """(path, content) of the playbook as a new SOP of this tree; PublishError when the checker objects."""
    docs = sops.check_docs(tree, docs_root).docs
    module = _target_module(docs)
    folder, position = new_sop.module_layout(module, [(d.path, d.module, d.content) for d in docs.values()])
    number = new_sop.next_number([(d.path, d.sop_id, d.title) for d in docs.values()], module)
    path = new_sop.sop_path(module, number, new_sop.slugify(mdx_text(mdx_safe(view.title))), folder)
    content = render.sop(view, module_number=module.split("-")[1], number=number, path=path, position=position)
    problems = [p for p in sops.check_docs({**tree, path: content.encode()}, docs_root).problems if p.path == path]
    if problems:
        raise PublishError(f"the SOP would not pass validate: {problems[0]}")
    return path, content


def changelog(view, path: str) -> str:
    names = ", ".join(s.title for s in view.scenarios)
    return (f"playbook-sync: publish playbook {view.title!r} as a new SOP\n\nCreated:\n"
            f"- {path}: from the Playbook Builder ({len(view.scenarios)} scenarios: {names})\n"
            f"  owner: {view.owner or 'unknown'}, playbook {view.id}\n\n{trailer(view.id)}\n")


def publish(session: Session, settings: Settings, user_id: int, playbook_id: uuid.UUID,
            repo: PlaybookRepo | None = None) -> PlaybookRow:
    """Commit the playbook as an SOP (exactly one commit) and mark it published."""
    from playbook_sync.deps import build_repo
    from playbook_sync.publish import PullRequestRepo, wrap_repo

    row = owned(session, user_id, playbook_id, lock=True)  # one publish of a playbook at a time
    if row.published_sha:
        raise PublishError(f"already published as {row.published_path}; the weekly sync enriches it there now")
    view = views(session, [row])[0]
    if not view.scenarios:
        raise PublishError("add at least one scenario before publishing")
    repo = repo or wrap_repo(build_repo(settings), settings)
    if landed := repo.find_commit_with_trailer(trailer(playbook_id)):
        # Its commit landed and the database write after it did not (a crash between them): adopt the
        # commit, as a run adopts its own, instead of refusing every publish from then on.
        path = _added_path(repo, landed, settings.docs_root)
        if path is None:
            raise PublishError(f"already committed in {landed[:12]} (a publish that did not finish), and its SOP "
                               "cannot be found in that commit; nothing was changed")
        return _published(session, row, path, landed)
    for _ in range(ATTEMPTS):
        head = repo.head()
        path, content = place(view, repo.read_tree(settings.docs_root, head), settings.docs_root)
        message = changelog(view, path)
        try:
            sha = repo.commit({path: content.encode("utf-8")}, message, parent=head)
            break
        except NonFastForward:
            continue
    else:
        raise PublishError(f"the branch kept moving: gave up after {ATTEMPTS} attempts; try again")
    if isinstance(repo, PullRequestRepo):
        repo.publish(f"playbook-{playbook_id}", message)
    return _published(session, row, path, sha)


def _published(session: Session, row: PlaybookRow, path: str, sha: str) -> PlaybookRow:
    row.status, row.published_path, row.published_sha = "published", path, sha
    _touch(row)
    session.flush()
    return row


def _added_path(repo: PlaybookRepo, sha: str, docs_root: str) -> str | None:
    """The one SOP a publish commit added (it adds exactly one file), or None when that cannot be told."""
    parent = repo.parent_of(sha) if isinstance(repo, CommitParents) else None
    if parent is None:
        return None
    before = repo.read_tree(docs_root, parent)
    added = [path for path in repo.read_tree(docs_root, sha) if path not in before]
    return added[0] if len(added) == 1 else None
