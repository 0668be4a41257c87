"""What a model is shown of an SOP: its outline and a bounded excerpt, not the whole file.

A long SOP is ~7,000 words (~10k tokens); sending it whole to every classify and edit call
made a weekly run cost several dollars (issue 12). A decision needs the SOP's shape (the
outline), and the text where the entry would go: the best-matching sections for
classification, the target sections and their neighbours for an edit. Excerpts are whole
lines of the SOP, so a model can still copy an anchor line from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from playbook_sync.schemas import SopDoc

# ~1.5k tokens for the best classify candidate (4 characters a token), ~1k for the others; the
# outline counts against it. The runners-up need enough to see that the entry belongs elsewhere.
CLASSIFY_CHARS, RUNNER_UP_CHARS = 6_000, 4_000
# An edit call sees each target section up to this, each neighbour up to NEIGHBOUR_CHARS, all within EDIT_CHARS.
TARGET_CHARS, NEIGHBOUR_CHARS, EDIT_CHARS = 8_000, 2_000, 20_000
OUTLINE_CHARS = 2_000
_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Part:
    """A heading (level 0: the text before the first one) and its lines up to the next heading."""

    heading: str
    level: int
    text: str


def split(text: str) -> list[Part]:
    """The markdown's sections by #, ## and ### headings (not inside code fences); frontmatter dropped."""
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        lines = lines[end + 1 :] if end is not None else lines
    parts: list[Part] = []
    heading, level, body, fenced = "", 0, [], False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        found = None if fenced else _HEADING.match(line)
        if found:
            if heading or any(b.strip() for b in body):
                parts.append(Part(heading, level, "\n".join(body).strip("\n")))
            heading, level, body = found.group(2), len(found.group(1)), [line]
        else:
            body.append(line)
    if heading or any(b.strip() for b in body):
        parts.append(Part(heading, level, "\n".join(body).strip("\n")))
    return parts


# Every entry a run classifies splits its candidates' SOPs again: the same few texts (hot_path caches them per
# run, one object each, so the string's hash is computed once). ~128 long SOPs are a few MB.
@lru_cache(maxsize=128)
def _split_cached(text: str) -> tuple[Part, ...]:
    return tuple(split(text))


def outline(headings: Iterable[tuple[int, str]], limit: int = OUTLINE_CHARS) -> str:
    """Headings as an indented list (## at the left, ### one step in), cut at limit characters."""
    lines, size = [], 0
    for level, heading in headings:
        if level < 2:
            continue
        line = f"{'  ' * (level - 2)}- {heading}"
        if size + len(line) + 1 > limit:
            lines.append("- [more headings]")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def clip(text: str, limit: int) -> str:
    """Text cut at a line boundary to at most limit characters, saying how many lines were left out."""
    if len(text) <= limit:
        return text
    lines, kept, size = text.splitlines(), [], 0
    for line in lines:
        if size + len(line) + 1 > limit and kept:
            break
        kept.append(line[:limit])
        size += len(line) + 1
    return "\n".join(kept) + f"\n[... {len(lines) - len(kept)} more lines]"


def _find(parts: Sequence[Part], wanted: str) -> int | None:
    key = wanted.strip().casefold()
    return next((i for i, p in enumerate(parts) if p.heading.casefold() == key), None) if key else None


WHOLE = "The whole SOP:\n"


def for_candidate(sop_text: str, sections: Sequence[str], limit: int = CLASSIFY_CHARS) -> str:
    """Outline plus the best-matching sections (best first, in full while they fit), within limit characters.

    An SOP that fits the limit whole is sent whole: the same text for every entry, so a prompt
    prefix that ends with it repeats (and can be cached) across the entries it is best for.
    """
    parts = _split_cached(sop_text)
    body = "\n\n".join(p.text for p in parts)
    if len(body) + len(WHOLE) <= limit:
        return WHOLE + body
    shape = outline((p.level, p.heading) for p in parts)
    chosen = [i for i in dict.fromkeys(_find(parts, s) for s in sections) if i is not None]
    if not chosen:  # no heading named (or none found): the opening of the SOP says what it is about
        chosen = [next((i for i, p in enumerate(parts) if p.text.strip()), 0)] if parts else []
    room = max(limit - len(shape), limit // 2)
    texts = []
    for i in chosen:
        if room <= 200:
            break
        # A heading whose text is in its subsections (## Steps, then ### Step 1...) comes with them.
        below = next((j for j in range(i + 1, len(parts)) if parts[j].level <= parts[i].level), len(parts))
        text = clip("\n\n".join(p.text for p in parts[i:below]), room)
        texts.append(text)
        room -= len(text) + 2
    return f"Outline:\n{shape}\n\nBest-matching sections:\n" + "\n\n".join(texts)


def for_edit(doc: SopDoc, targets: Sequence[str]) -> tuple[str, str]:
    """(outline, excerpts) for an edit: each target section and its neighbours, in document order."""
    shape = outline((s.level, s.heading) for s in doc.sections)
    index = {s.heading: i for i, s in enumerate(doc.sections)}
    wanted = {index[t] for t in targets if t in index}
    near = {j for i in wanted for j in (i - 1, i + 1) if 0 <= j < len(doc.sections)} - wanted
    texts, room = [], EDIT_CHARS
    for i in sorted(wanted | near):
        if room <= 200:
            break
        cap = TARGET_CHARS if i in wanted else NEIGHBOUR_CHARS
        text = clip(doc.sections[i].text.strip("\n"), min(cap, room))
        texts.append(text)
        room -= len(text) + 2
    return shape, "\n\n".join(texts)
