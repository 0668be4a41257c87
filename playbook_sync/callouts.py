"""Callout blocks: render, choose where they go, insert them, prove the edit is additive.

An inserted *block* is exactly three lines, `:::type Title`, one MDX-safe body line and
`:::`. `insert_blocks` surrounds blocks with the blank lines markdown needs; the
additivity check (DESIGN §2.1) accepts a new file only if it is the old file, byte for
byte, with such blocks (and those blank lines) inserted between its lines.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import unicodedata
from collections import defaultdict

from playbook_sync.headings import is_generic
from playbook_sync.mdx import frontmatter_length, mdx_safe, scan
from playbook_sync.schemas import CalloutKind, Category, Section, SopDoc, TranscriptType

MAX_SENTENCES = 3
FIELD_TITLE, SALES_TITLE = "From the Field", "From Sales Calls"
_KINDS = {
    Category.insight: CalloutKind.field_tip,
    Category.question: CalloutKind.question,
    Category.product_intel: CalloutKind.info,
    Category.outcome: CalloutKind.results,
}
# (admonition type, title) per kind; a field tip from sales calls only is titled SALES_TITLE.
_HEADER = {
    CalloutKind.field_tip: ("tip", FIELD_TITLE),
    CalloutKind.question: ("warning", "Common Question"),
    CalloutKind.info: ("info", "Product Intel"),
    CalloutKind.results: ("note", "Results From the Field"),
}
OPENERS = frozenset({f":::tip {SALES_TITLE}"} | {f":::{kind} {title}" for kind, title in _HEADER.values()})
CLOSER = ":::"
# A sentence ends at .!? (maybe followed by a closing quote or bracket), then space and a capital.
_SENTENCE_BREAK = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"')\]\u201d\u2019]))\s+(?=[A-Z0-9\"'(\[\u201c\u2018]|[^\x00-\x7f])"
)

# Headings each kind prefers, most specific first (matched case-insensitively, as substrings).
_PREFERRED = {
    CalloutKind.question: ("common mistakes", "common questions", "faq", "pitfalls"),
    CalloutKind.info: ("why this matters",),
    CalloutKind.field_tip: ("key principles", "principles"),
    CalloutKind.results: (),
}
# Sections that are not a "step" an insight could belong to.
_NOT_STEPS = ("overview", "introduction", "summary", "related", "resources", "see also", "references",
              "changelog", "common mistakes", "why this matters")


def kind_for(category: Category) -> CalloutKind:
    """The callout kind used for an entry category (DESIGN §1 edit table)."""
    return _KINDS[Category(category)]


def _opener(kind: CalloutKind, transcript_types: set[TranscriptType]) -> str:
    admonition, title = _HEADER[kind]
    # Sales attribution only when every source is a sales call; mixed sources are "the field".
    if kind is CalloutKind.field_tip and transcript_types and set(transcript_types) == {TranscriptType.sales}:
        title = SALES_TITLE
    return f":::{admonition} {title}"


def sentences(text: str) -> list[str]:
    """Split one paragraph into sentences (a break needs `.!?`, a space and a capital/digit)."""
    return [part for part in _SENTENCE_BREAK.split(text.strip()) if part]


# The attribution line of a block: who said it, on what kind of call, when (issue 11 #8).
ATTRIBUTION_PREFIX = "— "


def render_block(kind: CalloutKind, body: str, transcript_types: set[TranscriptType], attribution: str = "") -> str:
    """`:::type Title\\n<1-3 MDX-safe sentences>\\n[— attribution\\n]:::\\n`; ValueError on an empty body."""
    text = " ".join(sentences(mdx_safe(body))[:MAX_SENTENCES])
    if not text:
        raise ValueError("callout body is empty after MDX sanitizing")
    credit = f"{ATTRIBUTION_PREFIX}{attribution}\n" if attribution else ""
    return f"{_opener(CalloutKind(kind), transcript_types)}\n{text}\n{credit}{CLOSER}\n"


_SOURCE_KIND = {TranscriptType.coaching: "coaching call", TranscriptType.sales: "sales call",
                TranscriptType.report: "execution report"}
MAX_ATTRIBUTED = 3


def attribution(entries) -> str:
    """Who said it, on what kind of call, when: `Dana Whitfield, coaching call, 2026-11-15; ...`.

    MDX-safe, on the block's last line after `— `, and never a sentence of its own: no `.`/`!`/`?`
    followed by a space inside."""
    parts = []
    for entry in entries:
        when = f", {entry.created_at:%Y-%m-%d}" if getattr(entry, "created_at", None) else ""
        speaker = " ".join((entry.speaker or "unnamed speaker").split())
        kind = _SOURCE_KIND.get(TranscriptType(entry.transcript_type), "call")
        # A speaker named after its source ("Execution report") read "Execution report, execution report".
        parts.append(f"{speaker}{'' if speaker.casefold() == kind else ', ' + kind}{when}")
    unique = list(dict.fromkeys(parts))
    more = len(unique) - MAX_ATTRIBUTED
    text = "; ".join(unique[:MAX_ATTRIBUTED]) + (f"; and {more} more" if more > 0 else "")
    return re.sub(r"[.!?]+(\s)", r"\1", mdx_safe(text)).strip()


def _is_block(lines: list[str]) -> bool:
    """Three lines, or four with an attribution line (no line endings), that render_block could have produced."""
    credit = lines[2:-1] if len(lines) == 4 else []
    return (
        len(lines) in (3, 4)
        and lines[0] in OPENERS
        and lines[-1] == CLOSER
        and bool(lines[1])
        and mdx_safe(lines[1]) == lines[1]
        and len(sentences(lines[1])) <= MAX_SENTENCES
        and all(c.startswith(ATTRIBUTION_PREFIX) and c.strip() != ATTRIBUTION_PREFIX.strip() and mdx_safe(c) == c
                for c in credit)
    )


def without_blocks(text: str) -> str:
    """The text without callout blocks in our format (other admonitions stay), as retrieval reads SOPs
    (sops.section_embedding_text): a callout is told the way calls are ("heads up from coaching", "the mobile app
    hides the field"), and indexed, that chatter drew next week's entries to the SOP with most such callouts."""
    lines, kept, i = text.splitlines(), [], 0
    while i < len(lines):
        size = next((n for n in (4, 3) if lines[i] in OPENERS and _is_block(lines[i:i + n])), 0)
        kept += [] if size else [lines[i]]
        i += size or 1
    return "\n".join(kept)


# --- placement ----------------------------------------------------------------------


def _find(doc: SopDoc, needle: str) -> Section | None:
    """First H2/H3 section whose heading contains `needle` (case-insensitive)."""
    needle = needle.casefold()
    return next((s for s in doc.sections if s.level and needle in s.heading.casefold()), None)


def _hinted(doc: SopDoc, hint: str | None) -> Section | None:
    """The section the hint names: exact heading, else one containing the hint, else one inside it."""
    wanted = (hint or "").strip().casefold()
    if not wanted:
        return None
    headed = [(s.heading.casefold(), s) for s in doc.sections if s.heading]
    for matches in (lambda h: h == wanted, lambda h: wanted in h, lambda h: h in wanted):
        if (found := next((s for h, s in headed if matches(h)), None)) is not None:
            return found
    return None


def _is_step(section: Section) -> bool:
    """A content section an insight can sit in: has a body and is not a meta section."""
    body = section.text.splitlines()[1:]
    heading = section.heading.casefold()
    return (section.level > 0 and any(line.strip() for line in body) and not any(m in heading for m in _NOT_STEPS)
            and not is_generic(section.heading))


def _fallback(doc: SopDoc) -> Section:
    """The last real section that is not a generic one (References, Appendix...), else the last real
    section, else the preamble, else an empty point at the end of the file."""
    if doc.sections:
        real = [s for s in doc.sections if s.level]
        return next((s for s in reversed(real) if not is_generic(s.heading)), real[-1] if real else doc.sections[-1])
    end = len(doc.content.splitlines())
    return Section(heading="", level=0, start_line=end, end_line=end, text="")


def choose_section(doc: SopDoc, kind: CalloutKind, hint: str | None) -> Section:
    """The section a callout of `kind` goes in (DESIGN §1 table), always a real one."""
    kind = CalloutKind(kind)
    hinted = _hinted(doc, hint)
    if hinted is not None and is_generic(hinted.heading):
        hinted = None  # generic sections are targets only when nothing else fits (_fallback)
    candidates: list[Section | None] = []
    if kind is CalloutKind.field_tip and hinted is not None and _is_step(hinted):
        candidates.append(hinted)
    candidates += [_find(doc, needle) for needle in _PREFERRED[kind]]
    candidates.append(hinted)
    return next((c for c in candidates if c is not None), None) or _fallback(doc)


def insertion_line(doc: SopDoc, section: Section) -> int:
    """Line index to insert at: after the section's last content, outside code and admonitions."""
    lines = doc.content.splitlines(keepends=True)
    infos = scan(lines)
    head = frontmatter_length(lines)

    def fits(p: int) -> bool:
        # A point is safe after a real line break, outside frontmatter, fences and admonitions,
        # and reads well right after a non-blank line (the blank line is ours to add).
        if p < max(head, 1) or p > len(lines) or not infos[p - 1].outside:
            return False
        previous = lines[p - 1]
        return bool(previous.strip()) and (p == len(lines) or previous.endswith(("\n", "\r")))

    first = section.start_line + (1 if section.level else 0)
    # Prefer the end of the section; else just after an admonition/fence that runs past it;
    # else the nearest safe point before the section.
    order = [*range(section.end_line, first - 1, -1), *range(section.end_line + 1, len(lines) + 1),
             *range(first - 1, 0, -1)]
    for p in order:
        if fits(p):
            return p
    if not lines:
        return 0
    raise ValueError(f"{doc.path}: no safe insertion point for section {section.heading!r}")


# --- insertion ----------------------------------------------------------------------


def _eol(text: str) -> str:
    """The file's line ending style, judged by its first line break."""
    index = text.find("\n")
    return "\r\n" if index > 0 and text[index - 1] == "\r" else "\n"


def _has_final_eol(text: str) -> bool:
    return not text or text.endswith("\n")


def _blank(line: str) -> bool:
    return not line.strip()


def insert_blocks(content: str, insertions: list[tuple[int, str]]) -> str:
    """Insert rendered blocks before the given line indices; blank lines added only where needed.

    Each insertion point gets `[blank] block (blank block)* [blank]`: the leading blank
    only after a non-blank line, the trailing one only before a non-blank line. Blocks at
    the same index keep their order. Line endings follow the file (CRLF stays CRLF) and a
    missing final newline stays missing.
    """
    eol = _eol(content)
    lines = content.splitlines(keepends=True)
    if not _has_final_eol(content):
        lines[-1] += eol  # work as if it had one; removed again below
    grouped: dict[int, list[list[str]]] = defaultdict(list)
    for index, block in insertions:
        block_lines = block.replace("\r\n", "\n").removesuffix("\n").split("\n")
        if not 0 <= index <= len(lines):
            raise ValueError(f"insertion line {index} outside 0..{len(lines)}")
        if not _is_block(block_lines):
            raise ValueError(f"not a callout block: {block[:80]!r}")
        if 0 < index < len(lines) and not lines[index - 1].endswith(("\n", "\r")):
            raise ValueError(f"line {index} ends without a markdown line break")
        grouped[index].append(block_lines)
    out: list[str] = []
    for index in range(len(lines) + 1):
        if index in grouped:
            chunk: list[str] = [""] if index and not _blank(lines[index - 1]) else []
            for number, block_lines in enumerate(grouped[index]):
                chunk += ([""] if number else []) + block_lines
            chunk += [""] if index < len(lines) and not _blank(lines[index]) else []
            out.extend(line + eol for line in chunk)
        if index < len(lines):
            out.append(lines[index])
    result = "".join(out)
    return result if _has_final_eol(content) else result.removesuffix(eol)


# --- additivity ---------------------------------------------------------------------


def _chunk_ends(new: list[str], start: int, limit: int, eol: str) -> list[int]:
    """Every k with new[start:k] a well-formed inserted chunk: [blank] block (blank block)* [blank]."""
    ends: list[int] = []
    pos = start + (1 if start < limit and new[start] == eol else 0)

    def block_at(p: int) -> int:
        """The length of the block starting at p (4 with an attribution line, else 3), or 0."""
        for size in (4, 3):
            if p + size <= limit and all(line.endswith(eol) for line in new[p : p + size]) and _is_block(
                    [line.removesuffix(eol) for line in new[p : p + size]]):
                return size
        return 0

    while size := block_at(pos):
        pos += size
        ends.append(pos)
        if pos < limit and new[pos] == eol:
            ends.append(pos + 1)
            if block_at(pos + 1):
                pos += 1
                continue
        break
    return ends


def _align(a: list[str], b: list[str], eol: str) -> tuple[list[tuple[int, int, int]] | None, tuple[int, int]]:
    """Inserted chunks as (old line, new start, new end), or None if `b` is not `a` plus chunks.

    A search over (old line i, new line j) states: equal lines advance both, a well-formed
    chunk advances only j; two chunks may not touch (together they would be malformed).
    j - i never exceeds the number of inserted lines, so the search is linear in the file
    length, and exact where a line diff (difflib) can misalign repeated lines. Also returns
    the furthest state reached, where the first fault is.
    """
    extra = max(len(b) - len(a), 0)
    State = tuple[int, int, bool]  # (old line, new line, arrived by a chunk)
    parent: dict[State, State | None] = {(0, 0, False): None}
    pending: dict[int, set[tuple[int, bool]]] = defaultdict(set, {0: {(0, False)}})
    frontier = (0, 0)
    for i in range(len(a) + 1):
        heap = sorted(pending.pop(i, set()))
        while heap:
            j, by_chunk = heapq.heappop(heap)
            frontier = max(frontier, (i, j))
            if not by_chunk:
                for k in _chunk_ends(b, j, min(len(b), i + extra), eol):
                    if (i, k, True) not in parent:
                        parent[(i, k, True)] = (i, j, by_chunk)
                        heapq.heappush(heap, (k, True))
            if i < len(a) and j < len(b) and a[i] == b[j] and (i + 1, j + 1, False) not in parent:
                parent[(i + 1, j + 1, False)] = (i, j, by_chunk)
                pending[i + 1].add((j + 1, False))
    state = next((s for s in ((len(a), len(b), False), (len(a), len(b), True)) if s in parent), None)
    if state is None:
        return None, frontier
    chunks: list[tuple[int, int, int]] = []
    while (previous := parent[state]) is not None:
        if state[2]:
            chunks.append((state[0], previous[1], state[1]))
        state = previous
    return chunks[::-1], frontier


def _lines(old: str, new: str) -> tuple[list[str], list[str], str]:
    """Both files as lines, given the final line break the old one lacks (so EOF appends are inserts)."""
    eol = _eol(old)
    if not _has_final_eol(old):
        old, new = old + eol, new + eol
    return old.splitlines(keepends=True), new.splitlines(keepends=True), eol


def check_additive(old: str, new: str) -> str | None:
    """None if `new` is `old` plus inserted callout blocks only; else what is wrong, precisely."""
    if old == new:
        return None
    if _has_final_eol(old) != _has_final_eol(new):
        return "final newline " + ("removed" if _has_final_eol(old) else "added")
    a, b, eol = _lines(old, new)
    chunks, (i, j) = _align(a, b, eol)
    if chunks is not None:
        return None
    # Old line i is the first that no alignment could place at new line j: say why.
    if i == len(a) or (j < len(b) and a[i] in b[j + 1 : j + 1 + len(b) - len(a)]):
        return f"inserted text at line {j + 1} is not a callout block: {b[j][:60]!r}"
    if j == len(b) or (i + 1 < len(a) and b[j] == a[i + 1]):
        return f"line {i + 1} deleted: {a[i][:60]!r}"
    return f"line {i + 1} changed{_how(a[i], b[j])}: {a[i][:60]!r} -> {b[j][:60]!r}"


def _how(old_line: str, new_line: str) -> str:
    if old_line.rstrip("\r\n") == new_line.rstrip("\r\n"):
        return " (line ending)"
    return " (whitespace only)" if old_line.split() == new_line.split() else ""


def verify_additive(old: str, new: str) -> bool:
    """True when removing the inserted blocks from `new` gives back `old` byte for byte."""
    return check_additive(old, new) is None


def removed_view(old: str, new: str) -> str:
    """`new` with the inserted chunks taken out (== `old` when additive); ValueError otherwise."""
    if (reason := check_additive(old, new)) is not None:
        raise ValueError(reason)
    a, b, eol = _lines(old, new)
    for _, start, end in reversed(_align(a, b, eol)[0] or []):
        del b[start:end]
    kept = "".join(b)
    return kept if _has_final_eol(old) else kept.removesuffix(eol)


# --- idempotence --------------------------------------------------------------------


def _norm_lines(text: str) -> list[str]:
    """Non-blank lines with whitespace collapsed: the form blocks are compared in."""
    return [" ".join(line.split()) for line in unicodedata.normalize("NFC", text).splitlines() if line.strip()]


def block_hash(block: str) -> str:
    """sha256 of the normalized block text (line endings and spacing do not matter)."""
    return hashlib.sha256("\n".join(_norm_lines(block)).encode("utf-8")).hexdigest()


def contains_block(content: str, block: str) -> bool:
    """True if `content` already holds this block (normalized lines, consecutive)."""
    needle, hay = _norm_lines(block), _norm_lines(content)
    return bool(needle) and any(hay[i : i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))
