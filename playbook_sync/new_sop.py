"""New SOPs: a structured draft rendered through the spec's template, numbered and confined."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

from playbook_sync.callouts import sentences
from playbook_sync.mdx import find_hazards, mdx_safe, mdx_text
from playbook_sync.schemas import SopDraft
from playbook_sync.sops import SopError, parse_sop

SOPS_ROOT = "docs/sops"
MAX_SLUG = 60
MAX_STEP_HEADING = 80
AUTO_GENERATED_NOTICE = (
    ":::info Auto-Generated\n"
    "This SOP was created from patterns identified across multiple coaching\n"
    "and sales calls. It will continue to evolve as new knowledge is captured.\n"
    ":::\n"
)
_MODULE = re.compile(r"module-(\d+)")
_FILE = re.compile(r"sop-\d+-\d+-[a-z0-9]+(?:-[a-z0-9]+)*\.md")


def slugify(title: str) -> str:
    """Lowercase ASCII words joined by hyphens, at most 60 chars, never empty."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > MAX_SLUG:
        cut = slug[: MAX_SLUG + 1]
        # Cut at a word boundary unless that would leave too little of the title.
        slug = cut[: cut.rfind("-")] if cut.rfind("-") >= MAX_SLUG // 2 else slug[:MAX_SLUG]
        slug = slug.strip("-")
    return slug or "untitled"


def _module_number(module: str) -> str:
    match = _MODULE.fullmatch(module)
    if match is None:
        raise ValueError(f"module must look like 'module-4', got {module!r}")
    return str(int(match.group(1)))


def next_number(existing: Iterable[tuple[str, str | None, str | None]], module: str) -> int:
    """One after the highest SOP number of `module`, read from ids, titles and file names."""
    n = _module_number(module)
    patterns = (
        (1, re.compile(rf"sop-0*{n}-(\d+)(?:-|$)")),  # id
        (2, re.compile(rf"\s*SOP\s+0*{n}\.(\d+)\b", re.I)),  # title
        (0, re.compile(rf"sop-0*{n}-(\d+)(?:-|\.mdx?$)")),  # file name
    )
    highest = 0
    for item in existing:
        for field, pattern in patterns:
            value = item[field]
            if field == 0 and value:
                value = PurePosixPath(value).name
            if value and (match := pattern.match(str(value))):
                highest = max(highest, int(match.group(1)))
    return highest + 1


def sop_path(module: str, number: int, slug: str, folder: str | None = None) -> str:
    """`<folder>/sop-N-number-slug.md`, the folder being where the module's SOPs live (default
    `docs/sops/module-N`); ValueError unless it stays in that folder."""
    n = _module_number(module)
    base = PurePosixPath(folder) if folder else PurePosixPath(SOPS_ROOT, module)
    # The folder comes from the repository's own paths; still, never absolute or climbing out.
    if ".." in base.parts or base.is_absolute() or not base.parts:
        raise ValueError(f"refusing SOP folder {str(base)!r}")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"SOP number must be a positive integer, got {number!r}")
    name = f"sop-{n}-{number}-{slug}.md"
    path = base / name
    # The slug comes from model output: check the result, not just the inputs.
    if not _FILE.fullmatch(name) or path.parent != base or ".." in path.parts:
        raise ValueError(f"refusing SOP path outside {base}/: {str(path)!r}")
    return str(path)


def _step(number: int, text: str) -> str:
    """`### Step k: first sentence` plus the rest as a paragraph (a long first sentence stays in the body)."""
    parts = sentences(text)
    if len(parts[0]) <= MAX_STEP_HEADING:
        heading, body = parts[0].rstrip("."), " ".join(parts[1:])
    else:
        heading, body = "", text
    title = f"### Step {number}: {heading}" if heading else f"### Step {number}"
    return f"{title}\n\n{body}\n" if body else f"{title}\n"


def render_new_sop(module: str, number: int, draft: SopDraft, *, folder: str | None = None,
                   position: int | None = None) -> tuple[str, str]:
    """(path, content) of a new SOP following the spec template; all draft text made MDX-safe.
    `folder`: where the module's SOPs live; `position`: its sidebar_position (after the last SOP)."""
    n = _module_number(module)
    title = mdx_safe(draft.title)
    overview = mdx_safe(draft.overview)
    steps = [s for s in map(mdx_safe, draft.steps) if s]
    lessons = [s for s in map(mdx_safe, draft.key_lessons) if s]
    missing = [name for name, value in (("title", title), ("overview", overview), ("steps", steps),
                                        ("key lessons", lessons)) if not value]
    if missing:
        raise ValueError(f"SOP draft has no usable {', '.join(missing)} after MDX sanitizing")
    # The slug and the frontmatter are not MDX: they take the text a reader sees ("{x}", not "&#123;x&#125;").
    slug = slugify(mdx_text(title))
    path = sop_path(module, number, slug, folder)
    full_title = f"SOP {n}.{number}: {title}"
    # JSON strings are valid YAML double-quoted scalars: quotes, colons and '#' stay literal.
    sidebar = f"sidebar_position: {int(position)}\n" if position is not None else ""
    front_title = json.dumps(mdx_text(full_title), ensure_ascii=False)
    frontmatter = f"---\nid: sop-{n}-{number}-{slug}\ntitle: {front_title}\n{sidebar}---\n"
    content = "\n".join([
        frontmatter,
        f"# {full_title}\n",
        AUTO_GENERATED_NOTICE,
        f"## Overview\n\n{overview}\n",
        "## Steps\n",
        *(_step(k, step) for k, step in enumerate(steps, start=1)),
        "## Key Lessons\n",
        "".join(f"- {lesson}\n" for lesson in lessons),
    ])
    _check(path, content, mdx_text(full_title))
    return path, content


def _check(path: str, content: str, title: str) -> None:
    """Refuse to hand out an SOP we could not read back, or one with MDX hazards."""
    try:
        doc = parse_sop(path, content.encode("utf-8"))
    except SopError as exc:
        raise ValueError(f"rendered SOP does not parse: {exc}") from None
    if doc.title != title:
        raise ValueError(f"rendered SOP title reads back as {doc.title!r}, expected {title!r}")
    if hazards := find_hazards(content):
        raise ValueError(f"rendered SOP has MDX hazards: {hazards}")


_POSITION = re.compile(r"^sidebar_position:\s*(\d+)\s*$", re.MULTILINE)


def module_layout(module: str, docs: Iterable[tuple[str, str | None, str]]) -> tuple[str | None, int | None]:
    """(folder, next sidebar position) for a new SOP of `module`, from the SOPs already there.

    docs: (path, module, content). The folder is the one holding most of the module's SOPs,
    whatever its name (`module-2-lead-management/`); the position follows the folder's last one.
    """
    folders: dict[str, list[str]] = {}
    for path, doc_module, content in docs:
        if doc_module == module:
            folders.setdefault(str(PurePosixPath(path).parent), []).append(content)
    if not folders:
        return None, None
    folder = max(sorted(folders), key=lambda f: len(folders[f]))
    positions = [int(m.group(1)) for content in folders[folder]
                 if (m := _POSITION.search(content.split("\n---", 1)[0] if content.startswith("---") else ""))]
    return folder, (max(positions) + 1 if positions else None)
