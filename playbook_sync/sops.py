"""Read and check SOPs: the one checker, frontmatter, H2/H3 sections, content hashes, embedding texts.

`check_sop` and `check_docs` are the only place that decides whether a doc is valid. They
return the parsed documents together with structured problems (path, line, stable code,
message); the run (sync_sops, finalize), the commit gate and `playbook-sync validate` all use
them and decide by code. A problem becomes text only at the edges: CLI output, a run's
error_log, its report.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import yaml

from playbook_sync.callouts import without_blocks
from playbook_sync.mdx import STRUCTURAL, coded_hazards, frontmatter_length
from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.localgit import safe_repo_path
from playbook_sync.schemas import Section, SopDoc
from playbook_sync.textmemo import memoized

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# A module folder is `module-4` or named like `module-2-lead-management`; either way the module is `module-N`.
_MODULE = re.compile(r"(?:^|/)module-0*(\d+)(?:[-_][^/]*)?/")


# Problems after which a doc is not parsed at all: it is neither embedded nor edited.
UNREADABLE = frozenset({"unsafe-name", "too-large", "not-utf8", "no-frontmatter", "frontmatter-unclosed",
                        "frontmatter-yaml", "frontmatter-not-mapping", "no-id", "no-title"})
# Problems of a parsed doc that stop a run from editing it (which copy of an id is right is a
# human call; an unclosed block would swallow anything inserted after it). Other hazards only
# stop an edit that adds one (validate.gate).
NOT_EDITABLE = frozenset({"duplicate-id"}) | STRUCTURAL


@dataclass(frozen=True, order=True)
class Problem:
    """One finding in one file at a 1-based line: callers decide on the stable `code`; `message` is for people."""

    path: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"

    @property
    def unreadable(self) -> bool:
        """The doc is not parsed (not embedded, not edited)."""
        return self.code in UNREADABLE

    @property
    def blocks_edits(self) -> bool:
        """A run leaves the doc alone until a person fixes this."""
        return self.code in UNREADABLE or self.code in NOT_EDITABLE


class SopError(ValueError):
    """An SOP that cannot be used for edits; carries its first problem (file, line, code)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.path, self.line, self.message = problem.path, problem.line, problem.message


def content_hash(content: bytes | str) -> str:
    """SHA-256 of the file content, the spec's cache key."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def module_of(path: str) -> str | None:
    """`module-4` from `docs/sops/module-4/...` or `docs/sops/module-4-customer-success/...`, else None."""
    match = _MODULE.search(path)
    return f"module-{match.group(1)}" if match else None


def is_doc(path: str, docs_root: str = "docs") -> bool:
    """Markdown files under the docs root are SOP candidates."""
    p, root = PurePosixPath(path), PurePosixPath(docs_root).parts
    return p.suffix in {".md", ".mdx"} and p.parts[:len(root)] == root  # a root like website/docs too


def split_sections(body_lines: list[str], offset: int = 0) -> list[Section]:
    """Split markdown lines into a preamble and H2/H3 sections (fenced code ignored)."""
    sections: list[Section] = []
    start, heading, level = 0, "", 0
    in_fence = False
    for index, line in enumerate(body_lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        match = _HEADING.match(line)
        if match and len(match.group(1)) in (2, 3):
            sections.append(_section(body_lines, start, index, heading, level, offset))
            start, heading, level = index, match.group(2).strip(), len(match.group(1))
    sections.append(_section(body_lines, start, len(body_lines), heading, level, offset))
    return [s for s in sections if s.text.strip() or s.level]


def _section(lines: list[str], start: int, end: int, heading: str, level: int, offset: int) -> Section:
    return Section(
        heading=heading,
        level=level,
        start_line=start + offset,
        end_line=end + offset,
        text="".join(lines[start:end]),
    )


@dataclass
class Checked:
    """One doc checked: the parsed SOP (None when unreadable), its problems, the id it claims and its line."""

    doc: SopDoc | None
    problems: list[Problem]
    sop_id: str | None = None
    id_line: int = 1


@dataclass
class _Front:
    meta: dict
    length: int  # lines of frontmatter, both '---' included
    id_line: int  # 1-based line of `id:` (1 when absent)


_ID_LINE = re.compile(r"^id\s*:")


def skip_reason(path: str, size: int, max_bytes: int | None) -> Problem | None:
    """Why a doc is not even read (a name we could not write back, too large), as a problem; else None."""
    try:
        # A name we could not write back (a tab, a newline) would fail every commit that touches it.
        safe_repo_path(path)
    except ProviderError:
        return Problem(path, 1, "unsafe-name",
                       f"file name {path!r} has a control character or other unsafe part; rename the file")
    if max_bytes is not None and size > max_bytes:
        return Problem(path, 1, "too-large",
                       f"file is {size:,} bytes, over PLAYBOOK_SYNC_MAX_SOP_BYTES={max_bytes:,}; not checked")
    return None


# Deeper frontmatter is refused before PyYAML composes it: its composer recurses, so how deep a document
# parses would depend on how deep the caller's stack is, and a remembered parse (textmemo) on who asked first.
MAX_NESTING = 64


def _load_yaml(text: str) -> object:
    """The YAML document; RecursionError when nested deeper than MAX_NESTING."""
    # Each level needs a line of its own (block style), a bracket (flow style) or a "- " or "? " indicator (compact
    # nesting, `- - - x`): most frontmatter is well within that bound, and only the rest is walked through the
    # parser's events (no recursion).
    if sum(text.count(c) for c in "\n[{-?") > MAX_NESTING:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise RecursionError(f"nested deeper than {MAX_NESTING} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    return yaml.safe_load(text)


def read_frontmatter(path: str, lines: list[str]) -> _Front | Problem:
    """The one frontmatter reader: the YAML mapping between the leading '---' lines, or why there is none."""
    if not lines or lines[0].strip() != "---":
        return Problem(path, 1, "no-frontmatter", "missing frontmatter (the file must start with '---')")
    length = frontmatter_length(lines)
    if not length:
        return Problem(path, 1, "frontmatter-unclosed", "frontmatter is not closed with '---'")
    try:
        meta = memoized("frontmatter", "".join(lines[1 : length - 1]), _load_yaml)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1  # +1 for 1-based, +1 for the opening '---'
        return Problem(path, line, "frontmatter-yaml", f"frontmatter is not valid YAML: {getattr(exc, 'problem', None) or exc}")
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        # PyYAML's constructors raise plain errors on values that scan but cannot be built
        # (the date 2024-13-45, `!!int abc`, `!!timestamp x`) and recurse on deep nesting.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        return Problem(path, 2, "frontmatter-yaml", f"frontmatter is not valid YAML: {reason}")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return Problem(path, 2, "frontmatter-not-mapping", "frontmatter is not a mapping of keys to values")
    id_line = next((i + 1 for i in range(1, length - 1) if _ID_LINE.match(lines[i])), 1)
    return _Front(meta, length, id_line)


def check_sop(path: str, content: bytes, *, max_bytes: int | None = None, hazards: bool = True) -> Checked:
    """Check one doc: every problem (MDX hazards too, unless hazards=False) and the SOP when it parses."""
    if skipped := skip_reason(path, len(content), max_bytes):
        return Checked(None, [skipped])
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        return Checked(None, [Problem(path, line, "not-utf8", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")])
    lines = text.splitlines(keepends=True)
    front = read_frontmatter(path, lines)
    problems: list[Problem] = [front] if isinstance(front, Problem) else []
    doc, sop_id = None, None
    if isinstance(front, _Front):
        raw_id, title = front.meta.get("id"), front.meta.get("title")
        if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()) or not isinstance(raw_id, (str, int)):
            problems.append(Problem(path, 1, "no-id", "frontmatter has no 'id'"))
        else:
            sop_id = str(raw_id)
        if not isinstance(title, str) or not title.strip():
            problems.append(Problem(path, 1, "no-title", "frontmatter has no 'title'"))
        if not problems:
            doc = SopDoc(path=path, sop_id=sop_id, title=title, module=module_of(path), content=text,
                         content_hash=content_hash(content),
                         sections=split_sections(lines[front.length:], offset=front.length),
                         home_page=str(front.meta.get("slug", "")).strip() == "/")
    if hazards:
        problems += [Problem(path, line, code, message) for line, code, message in coded_hazards(text)]
    return Checked(doc, problems, sop_id, front.id_line if isinstance(front, _Front) else 1)


def parse_sop(path: str, content: bytes, *, max_bytes: int | None = None) -> SopDoc:
    """Parse one SOP file; raise SopError (with its first problem) when it is unreadable (or larger than max_bytes)."""
    checked = check_sop(path, content, max_bytes=max_bytes, hazards=False)
    if checked.doc is None:
        raise SopError(checked.problems[0])
    return checked.doc


@dataclass
class Checkup:
    """Every doc of a tree checked: the SOPs that parse and every problem, sorted by path and line."""

    paths: list[str] = field(default_factory=list)  # every doc looked at, readable or not
    docs: dict[str, SopDoc] = field(default_factory=dict)  # those that parse (duplicates, broken blocks included)
    problems: list[Problem] = field(default_factory=list)

    def unreadable(self) -> dict[str, list[Problem]]:
        """path → why, for the docs that did not parse (their MDX hazards left out)."""
        return _by_path(p for p in self.problems if p.unreadable)

    def not_editable(self) -> dict[str, list[Problem]]:
        """path → the problems that stop a run from editing the doc."""
        return _by_path(p for p in self.problems if p.blocks_edits)

    def editable(self) -> dict[str, SopDoc]:
        """The docs a run may edit."""
        blocked = self.not_editable()
        return {path: doc for path, doc in self.docs.items() if path not in blocked}


def _by_path(problems) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = defaultdict(list)
    for problem in problems:
        out[problem.path].append(problem)
    return dict(out)


def check_docs(files: Mapping[str, bytes], docs_root: str = "docs", *, max_bytes: int | None = None,
               every_duplicate: bool = False, hazards: bool = True) -> Checkup:
    """Check every doc under docs_root, duplicate ids across them included.

    A duplicate id is reported on each file after the first holding it, or on every one of
    them with every_duplicate (a run edits none of them; a commit gate blames the file it
    is about to change). A file with an unsafe name or over max_bytes is reported, not parsed.
    """
    out = Checkup()
    ids: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path in sorted(files):
        if not is_doc(path, docs_root):
            continue
        out.paths.append(path)
        checked = check_sop(path, files[path], max_bytes=max_bytes, hazards=hazards)
        out.problems += checked.problems
        if checked.doc is not None:
            out.docs[path] = checked.doc
        if checked.sop_id is not None:  # an id clashes in the site even when the doc lacks a title
            ids[checked.sop_id].append((path, checked.id_line))
    for sop_id, where in ids.items():
        for index, (path, line) in enumerate(where):
            if len(where) > 1 and (index or every_duplicate):
                others = ", ".join(f"{p}:{n}" for p, n in where if p != path)
                out.problems.append(Problem(path, line, "duplicate-id", f"duplicate id '{sop_id}' (also in {others})"))
    out.problems.sort()
    return out


# How section_embedding_text makes a section's indexed text, in the SOP cache's key (index_key): a cache made another
# way (version 1: sections with our callouts) is embedded again once, whichever worker wrote it, with no migration.
INDEX_VERSION = 2


def index_key(doc: SopDoc) -> str:
    """The SOP cache's key for this file (with the embedding model): its content hash and INDEX_VERSION."""
    return content_hash(f"index {INDEX_VERSION}\n{doc.content_hash}")


def section_embedding_text(doc: SopDoc, section: Section) -> str:
    """What we embed for a section: the SOP title first, so short sections keep their topic; its text without
    our callouts (callouts.without_blocks)."""
    heading = f"{section.heading}\n" if section.heading else ""
    return f"{doc.title}\n{heading}{without_blocks(section.text)}"


def whole_embedding_text(doc: SopDoc, max_chars: int = 24_000) -> str:
    """What we embed for the whole SOP (capped: long SOPs match through their sections)."""
    return f"{doc.title}\n{doc.content}"[:max_chars]
