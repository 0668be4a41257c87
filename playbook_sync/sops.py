"""Read SOPs: frontmatter, H2/H3 sections, content hashes, embedding texts."""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

import frontmatter
import yaml

from playbook_sync.schemas import Section, SopDoc

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# A module folder is `module-4` or named like `module-2-lead-management`; either way the module is `module-N`.
_MODULE = re.compile(r"(?:^|/)module-0*(\d+)(?:[-_][^/]*)?/")


class SopError(ValueError):
    """An SOP that cannot be used for edits; carries the file and line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


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
    p = PurePosixPath(path)
    return p.suffix in {".md", ".mdx"} and p.parts[:1] == (docs_root,)


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


def parse_sop(path: str, content: bytes) -> SopDoc:
    """Parse one SOP file; raise SopError (with line) on anything we must not edit."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise SopError(path, line, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.startswith("---"):
        raise SopError(path, 1, "missing frontmatter (file must start with '---')")
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise SopError(path, line, f"broken frontmatter: {getattr(exc, 'problem', None) or exc}") from None
    if not post.metadata:
        raise SopError(path, 1, "frontmatter is empty or not closed with '---'")
    sop_id, title = post.metadata.get("id"), post.metadata.get("title")
    if not sop_id or not isinstance(sop_id, (str, int)):
        raise SopError(path, 1, "frontmatter has no 'id'")
    if not title or not isinstance(title, str):
        raise SopError(path, 1, "frontmatter has no 'title'")
    lines = text.splitlines(keepends=True)
    body_start = _frontmatter_end(lines) + 1
    return SopDoc(
        path=path,
        sop_id=str(sop_id),
        title=title,
        module=module_of(path),
        content=text,
        content_hash=content_hash(content),
        sections=split_sections(lines[body_start:], offset=body_start),
    )


def _frontmatter_end(lines: list[str]) -> int:
    """Index of the closing '---' line of the frontmatter."""
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return index
    return 0


def section_embedding_text(doc: SopDoc, section: Section) -> str:
    """What we embed for a section: the SOP title first, so short sections keep their topic."""
    heading = f"{section.heading}\n" if section.heading else ""
    return f"{doc.title}\n{heading}{section.text}"


def whole_embedding_text(doc: SopDoc, max_chars: int = 24_000) -> str:
    """What we embed for the whole SOP (capped: long SOPs match through their sections)."""
    return f"{doc.title}\n{doc.content}"[:max_chars]
