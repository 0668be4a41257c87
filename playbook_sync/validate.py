"""Lint the playbook (frontmatter, id/title, unique ids, admonitions, MDX hazards) and gate commits.

`check_tree` reports every problem as `path:line: message`. `gate` runs the same checks on the
files a run is about to commit and refuses a file whose checks got worse: a new SOP must be
clean, and an edit may not add a problem the file did not already have (a playbook that
already builds with, say, a JSX component must not block every future callout).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from playbook_sync.mdx import find_hazards
from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.localgit import safe_repo_path
from playbook_sync.sops import is_doc

if TYPE_CHECKING:
    from playbook_sync.config import Settings
    from playbook_sync.edits import Applied
    from playbook_sync.providers.base import PlaybookRepo

log = logging.getLogger(__name__)
_ID_LINE = re.compile(r"^id\s*:")


@dataclass(frozen=True, order=True)
class Problem:
    """One lint finding at a file and 1-based line."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class _Front:
    meta: dict
    end: int  # 0-based index of the closing '---'
    id_line: int  # 1-based line of `id:` (1 when absent)


def _frontmatter(path: str, lines: list[str], problems: list[Problem]) -> _Front | None:
    """Parse the YAML frontmatter; record a problem and return None when it is unusable."""
    if not lines or lines[0].strip() != "---":
        problems.append(Problem(path, 1, "missing frontmatter (the file must start with '---')"))
        return None
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        problems.append(Problem(path, 1, "frontmatter is not closed with '---'"))
        return None
    try:
        meta = yaml.safe_load("".join(lines[1:end]))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1  # +1 for 1-based, +1 for the opening '---'
        problems.append(Problem(path, line, f"frontmatter is not valid YAML: {getattr(exc, 'problem', None) or exc}"))
        return None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        problems.append(Problem(path, 2, "frontmatter is not a mapping of keys to values"))
        return None
    id_line = next((i + 1 for i in range(1, end) if _ID_LINE.match(lines[i])), 1)
    return _Front(meta, end, id_line)


def check_file(path: str, content: bytes) -> tuple[list[Problem], str | None, int]:
    """Problems of one doc, plus its frontmatter id (or None) and the id's line."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Problem(path, content[: exc.start].count(b"\n") + 1, f"not valid UTF-8 ({exc.reason})")], None, 1
    lines = text.splitlines(keepends=True)
    problems: list[Problem] = []
    front = _frontmatter(path, lines, problems)
    sop_id = None
    if front is not None:
        raw_id, title = front.meta.get("id"), front.meta.get("title")
        if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()) or not isinstance(raw_id, (str, int)):
            problems.append(Problem(path, 1, "frontmatter has no 'id'"))
        else:
            sop_id = str(raw_id)
        if not isinstance(title, str) or not title.strip():
            problems.append(Problem(path, 1, "frontmatter has no 'title'"))
    problems += [Problem(path, line, message) for line, message in find_hazards(text)]
    return problems, sop_id, front.id_line if front else 1


def check_tree(files: Mapping[str, bytes], docs_root: str = "docs", *, every_duplicate: bool = False,
               max_bytes: int | None = None) -> list[Problem]:
    """Every problem of every doc under docs_root, duplicate ids included, sorted by path and line.

    A duplicate id is reported on each file after the first holding it, or on every one of
    them with every_duplicate (so a commit gate can blame the file it is about to change).
    A file with an unsafe name or over max_bytes is reported and not parsed (the run skips it too).
    """
    problems: list[Problem] = []
    ids: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path in sorted(files):
        if not is_doc(path, docs_root):
            continue
        if skipped := _skipped(path, len(files[path]), max_bytes):
            problems.append(skipped)
            continue
        found, sop_id, line = check_file(path, files[path])
        problems += found
        if sop_id is not None:
            ids[sop_id].append((path, line))
    for sop_id, where in ids.items():
        for index, (path, line) in enumerate(where):
            if len(where) > 1 and (index or every_duplicate):
                other_path, other_line = where[1 if index == 0 else 0]
                problems.append(Problem(path, line, f"duplicate id '{sop_id}' (also in {other_path}:{other_line})"))
    return sorted(problems)


def _skipped(path: str, size: int, max_bytes: int | None) -> Problem | None:
    """Why the run skips this doc without parsing it (unsafe name, too large), as a problem; else None."""
    try:
        safe_repo_path(path)
    except ProviderError:
        return Problem(path, 1, f"file name {path!r} has a control character or other unsafe part; rename the file")
    if max_bytes is not None and size > max_bytes:
        return Problem(path, 1, f"file is {size:,} bytes, over PLAYBOOK_SYNC_MAX_SOP_BYTES={max_bytes:,}; not checked")
    return None


def read_directory(root: Path, docs_root: str = "docs", *, max_bytes: int | None = None) -> tuple[dict[str, bytes], list[Problem]]:
    """The docs of a checked-out playbook on disk (repo-relative path → bytes), and the files not read.

    Symbolic links are reported, never followed (a committed link could point at /etc/passwd);
    neither are other non-regular files or, with max_bytes, files larger than that.
    """
    base = root / docs_root
    if base.is_symlink():
        return {}, [Problem(docs_root, 1, "symbolic link: not followed (the docs root must be a directory of the repository)")]
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
                problems.append(Problem(rel, 1, f"symbolic link to {os.readlink(full)!r}: not followed"))
            elif name in names and Path(name).suffix in (".md", ".mdx"):
                if not stat.S_ISREG(info.st_mode):
                    problems.append(Problem(rel, 1, "not a regular file: not read"))
                elif skipped := _skipped(rel, info.st_size, max_bytes):
                    problems.append(skipped)
                else:
                    files[rel] = _read_no_follow(full)
    return files, problems


def _read_no_follow(path: Path) -> bytes:
    # O_NOFOLLOW: a file swapped for a link after the lstat above is refused, not followed.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _key(problem: Problem) -> str:
    # Line numbers move when blocks are inserted; compare what is wrong, not where.
    return re.sub(r"\(also in [^)]*\)", "", problem.message)


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
