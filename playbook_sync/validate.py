"""Lint the playbook (frontmatter, id/title, unique ids, admonitions, MDX hazards) and gate commits.

`check_tree` reports every problem (a `sops.Problem`: path, line, code, message) that the one
checker, `sops.check_docs`, finds; the CLI prints each as `path:line: message`. `gate` runs
the same checks on the files a run is about to commit and refuses a file whose checks got worse: a new SOP must be
clean, and an edit may not add a problem the file did not already have (a playbook that
already builds with, say, a JSX component must not block every future callout).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from playbook_sync.sops import Problem, check_docs, skip_reason

if TYPE_CHECKING:
    from playbook_sync.config import Settings
    from playbook_sync.edits import Applied
    from playbook_sync.providers.base import PlaybookRepo

__all__ = ["Problem", "build_gate", "check_tree", "gate", "read_directory", "regressions"]
log = logging.getLogger(__name__)


def check_tree(files: Mapping[str, bytes], docs_root: str = "docs", *, every_duplicate: bool = False,
               max_bytes: int | None = None) -> list[Problem]:
    """Every problem of every doc under docs_root, duplicate ids included, sorted by path and line (sops.check_docs)."""
    return check_docs(files, docs_root, every_duplicate=every_duplicate, max_bytes=max_bytes).problems


def read_directory(root: Path, docs_root: str = "docs", *, max_bytes: int | None = None) -> tuple[dict[str, bytes], list[Problem]]:
    """The docs of a checked-out playbook on disk (repo-relative path → bytes), and the files not read.

    Symbolic links are reported, never followed (a committed link could point at /etc/passwd);
    neither are other non-regular files or, with max_bytes, files larger than that.
    """
    base = root / docs_root
    if base.is_symlink():
        return {}, [Problem(docs_root, 1, "symlink", "symbolic link: not followed (the docs root must be a directory of the repository)")]
    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a directory (is --repo the playbook's root?)")
    if not base.resolve().is_relative_to(root.resolve()):
        raise FileNotFoundError(f"{base} is outside {root} (PLAYBOOK_SYNC_DOCS_ROOT must name a folder inside it)")
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    for folder, dirs, names in os.walk(base):  # followlinks=False: a linked directory is listed, not entered
        here = Path(folder)
        for name in sorted(dirs + names):
            full = here / name
            rel = full.relative_to(root).as_posix()
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                problems.append(Problem(rel, 1, "symlink", f"symbolic link to {os.readlink(full)!r}: not followed"))
            elif name in names and Path(name).suffix in (".md", ".mdx"):
                if not stat.S_ISREG(info.st_mode):
                    problems.append(Problem(rel, 1, "not-regular", "not a regular file: not read"))
                elif skipped := skip_reason(rel, info.st_size, max_bytes):
                    problems.append(skipped)
                else:
                    files[rel] = _read_no_follow(full)
    return files, problems


def _read_no_follow(path: Path) -> bytes:
    # O_NOFOLLOW: a file swapped for a link after the lstat above is refused, not followed.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _key(problem: Problem) -> tuple[str, str]:
    # Line numbers move when blocks are inserted; compare what is wrong, not where.
    return problem.code, re.sub(r"\(also in [^)]*\)", "", problem.message)


def regressions(before: Mapping[str, bytes], after: Mapping[str, bytes], docs_root: str = "docs") -> dict[str, list[Problem]]:
    """Per changed or new file: the problems `after` has that `before` did not."""
    old = Counter((p.path, _key(p)) for p in check_tree(before, docs_root, every_duplicate=True))
    out: dict[str, list[Problem]] = {}
    for problem in check_tree(after, docs_root, every_duplicate=True):
        if after.get(problem.path) == before.get(problem.path):
            continue  # untouched files are not this run's doing
        key = (problem.path, _key(problem))
        if old[key] > 0:
            old[key] -= 1
            continue
        out.setdefault(problem.path, []).append(problem)
    return out


def gate(applied: Applied, tree: Mapping[str, bytes], docs_root: str = "docs") -> list[str]:
    """Drop every file of `applied` that fails validation (its blocks are deferred); return the reasons."""
    after = {**tree, **{p: c for p, c in applied.files.items() if c is not None}}
    failing = regressions(tree, after, docs_root)
    reasons: list[str] = []
    for path, problems in sorted(failing.items()):
        reasons.append(_drop(applied, path, f"validation failed for {path}: " + "; ".join(str(p) for p in problems[:3])))
    return reasons


def _drop(applied: Applied, path: str, reason: str) -> str:
    """Take one file out of the commit; its blocks are deferred with the reason."""
    log.warning("refusing to commit %s", reason)
    applied.files.pop(path, None)
    applied.dropped += [(b, reason) for b in applied.blocks if b.sop_path == path]
    applied.blocks = [b for b in applied.blocks if b.sop_path != path]
    applied.sops = [s for s in applied.sops if s.path != path]
    return reason


def build_gate(applied: Applied, repo: PlaybookRepo, head: str, settings: Settings, attempts: int = 3) -> list[str]:
    """With settings.build_gate: build the site with the changes; drop the files a failed build points at.

    When a failed build names none of the changed files, the unchanged tree is built too: if it
    fails as well the site was broken before this run (logged, nothing dropped, as `gate` does
    with old problems); if it builds, every changed file is dropped, since one of them broke it.
    """
    from playbook_sync import sitebuild

    if not settings.build_gate or not applied.files:
        return []
    base = repo.read_tree("", head)
    cache = settings.build_cache_dir or settings.data_dir / "site-build"
    reasons: list[str] = []
    try:
        for _ in range(attempts):
            if not applied.files:
                return reasons
            result = sitebuild.build({**base, **applied.files}, cache, settings.build_timeout_seconds)
            if result.ok:
                return reasons
            changed = {p: c for p, c in applied.files.items() if c is not None}
            blamed = sitebuild.blame(result, changed)
            if not blamed:
                before = sitebuild.build(base, cache, settings.build_timeout_seconds)
                if not before.ok:
                    log.warning("the site does not build without this run's changes either; build gate skipped: %s",
                                before.summary())
                    return reasons
                blamed = sorted(applied.files)
            reasons += [_drop(applied, path, f"site build failed for {path}: {result.summary()}") for path in blamed]
        reasons += [_drop(applied, path, f"site build failed for {path}: still failing after {attempts} builds")
                    for path in sorted(applied.files)]
    except sitebuild.BuildUnavailable as exc:
        log.warning("build gate is on but cannot run: %s (the MDX lint still gates the commit)", exc)
    return reasons
