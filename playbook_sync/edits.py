"""Plan callouts and new SOPs, and apply them to a tree with the additivity check."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from playbook_sync import callouts
from playbook_sync.mdx import find_hazards, frontmatter_length, mdx_safe
from playbook_sync.new_sop import module_layout, next_number, render_new_sop
from playbook_sync.providers.base import LLM
from playbook_sync.restatements import split
from playbook_sync.retire import retire_blocks
from playbook_sync.schemas import CalloutKind, CalloutRequest, Entry, NewSopRequest, Section, SopDoc, SopDraft
from playbook_sync.sops import Problem, SopError, check_docs, parse_sop

log = logging.getLogger(__name__)


@dataclass
class PlannedBlock:
    """One callout for one SOP section, merging one or more entries."""

    sop_path: str
    hint: str  # section heading chosen at plan time; re-resolved when applied
    kind: CalloutKind
    block: str
    entry_ids: list[uuid.UUID]
    # Our earlier aggregate blocks this one replaces (outcome_callouts.plan): removed verbatim, see retire.py.
    replaces: tuple[str, ...] = ()


@dataclass
class PlannedSop:
    """A new SOP drafted from an orphan cluster."""

    cluster_id: uuid.UUID
    label: str
    path: str
    content: str
    entry_ids: list[uuid.UUID]


@dataclass
class Applied:
    """The outcome of applying a plan to one tree."""

    files: dict[str, bytes] = field(default_factory=dict)
    blocks: list[PlannedBlock] = field(default_factory=list)
    present: list[PlannedBlock] = field(default_factory=list)  # already in the file: nothing to write
    repeated: list[PlannedBlock] = field(default_factory=list)  # says what a callout of the SOP already says
    dropped: list[tuple[PlannedBlock, str]] = field(default_factory=list)
    sops: list[PlannedSop] = field(default_factory=list)


def parse_tree(tree: dict[str, bytes], docs_root: str, *, max_bytes: int | None = None) -> tuple[dict[str, SopDoc], dict[str, list[Problem]]]:
    """The docs of a tree a run may edit, and path → the problems that keep each other doc out of its edits.

    A doc is left alone when it does not parse (or is larger than max_bytes), when an unclosed
    admonition or code fence would swallow anything inserted after it, or when another doc
    has its id (Docusaurus refuses duplicate ids; which file is right is a human call).
    """
    checkup = check_docs(tree, docs_root, max_bytes=max_bytes, every_duplicate=True)
    return checkup.editable(), checkup.not_editable()


class AnchorError(ValueError):
    """The model's insertion plan names a line that is not in the SOP, even after a retry."""


def anchor_section(doc: SopDoc, anchor: str | None) -> tuple[Section | None, str | None]:
    """The section holding the plan's anchor line, or why the anchor is unusable (None, None: no anchor)."""
    if anchor is None:
        return None, None  # the offline provider places by the section rules alone
    wanted = anchor.strip()
    lines = doc.content.splitlines()
    body = range(frontmatter_length(lines), len(lines))
    found = next((i for i in body if wanted and lines[i].strip() == wanted), None)
    if found is None:
        return None, (f"anchor {anchor[:120]!r} is not a line of {doc.path}; copy one non-blank line of the SOP "
                      "text exactly, character for character")
    return next((s for s in doc.sections if s.start_line <= found < s.end_line), None), None


def plan_block(llm: LLM, doc: SopDoc, kind: CalloutKind, hint: str, entries: list[Entry],
               lessons: list[str] | None = None) -> PlannedBlock:
    """Ask the LLM for an insertion plan (anchor + 1-3 sentences) and render it as a safe callout.

    A plan whose anchor is not a line of the SOP is asked for once more, with the error;
    a second miss raises AnchorError, and the caller defers the entries to the next run.
    """
    section = callouts.choose_section(doc, kind, hint)
    request = CalloutRequest(
        sop_path=doc.path, sop_title=doc.title, section=section.heading, kind=kind,
        entries=entries, section_text=section.text, sop_text=doc.content, lessons=lessons or [],
    )
    draft = llm.write_callout(request)
    anchored, problem = anchor_section(doc, draft.anchor)
    if problem:
        draft = llm.write_callout(request.model_copy(update={"feedback": problem}))
        anchored, problem = anchor_section(doc, draft.anchor)
        if problem:
            raise AnchorError(f"{problem} (asked twice)")
    if anchored is not None:  # the anchor's section, still subject to the kind's placement rules
        section = callouts.choose_section(doc, kind, anchored.heading)
    block = callouts.render_block(kind, mdx_safe(draft.body), {e.transcript_type for e in entries},
                                  callouts.attribution(entries))
    return PlannedBlock(doc.path, section.heading, kind, block, [e.id for e in entries])


def group_for_blocks(doc: SopDoc, picks: list[tuple[Entry, str | None]]) -> dict[tuple[str, CalloutKind], list[Entry]]:
    """Entries for one SOP grouped by (section, callout kind): one block per group."""
    groups: dict[tuple[str, CalloutKind], list[Entry]] = defaultdict(list)
    for entry, hint in picks:
        kind = callouts.kind_for(entry.category)
        groups[(callouts.choose_section(doc, kind, hint).heading, kind)].append(entry)
    return groups


def apply_blocks(tree: dict[str, bytes], blocks: list[PlannedBlock], docs_root: str) -> Applied:
    """Insert planned blocks into the tree's SOPs; an SOP whose result is not additive is left alone."""
    out = Applied()
    by_sop: dict[str, list[PlannedBlock]] = defaultdict(list)
    for b in blocks:
        by_sop[b.sop_path].append(b)
    for path, planned in by_sop.items():
        if path not in tree:
            out.dropped += [(b, f"{path} no longer exists") for b in planned]
            continue
        try:
            doc = parse_sop(path, tree[path])
            doc, planned = _retire(doc, planned, out)
        except SopError as exc:
            out.dropped += [(b, f"SOP not editable: {exc}") for b in planned]
            continue
        fresh = [b for b in planned if not callouts.contains_block(doc.content, b.block)]
        out.present += [b for b in planned if b not in fresh]
        # A block whose text a callout of the SOP already carries (written by an earlier run under another date,
        # or drafted twice in this one) adds nothing a reader has not seen: its entries are redundant.
        said = {_said(body) for body in split(doc.content)[0]}
        unique = []
        for b in fresh:
            if (text := _said(" ".join(split(b.block)[0]))) in said:
                out.repeated.append(b)
            else:
                said.add(text)
                unique.append(b)
        fresh = unique
        if not fresh:
            continue
        insertions = [(callouts.insertion_line(doc, callouts.choose_section(doc, b.kind, b.hint)), b.block) for b in fresh]
        new = callouts.insert_blocks(doc.content, insertions)
        reason = callouts.check_additive(doc.content, new) or _new_hazards(doc.content, new)
        if reason:
            log.warning("dropping edits to %s: %s", path, reason)
            out.dropped += [(b, f"edit to {path} rejected: {reason}") for b in fresh]
            continue
        out.files[path] = new.encode("utf-8")
        out.blocks += fresh
    return out


def _retire(doc: SopDoc, planned: list[PlannedBlock], out: Applied) -> tuple[SopDoc, list[PlannedBlock]]:
    """The SOP without the earlier aggregates its planned blocks replace (the base the additivity check
    runs against), and the blocks still to apply; a replacement whose block is no longer in the SOP as we
    wrote it (a person edited or removed it since the plan) is dropped: the next run plans again."""
    doomed = [b for b in planned if b.replaces]
    if not doomed:
        return doc, planned
    keep = [b for b in planned if not b.replaces]
    retiring: list[str] = []
    for b in doomed:
        try:
            retire_blocks(doc.content, [*retiring, *b.replaces])
        except ValueError as exc:
            out.dropped.append((b, f"earlier aggregate of {doc.path} not replaced: {exc}"))
            continue
        retiring += [r for r in b.replaces if r not in retiring]
        keep.append(b)
    if not retiring:
        return doc, keep
    return parse_sop(doc.path, retire_blocks(doc.content, retiring).encode("utf-8")), keep


def _said(body: str) -> str:
    """A callout's text as a reader compares it: case, spacing and the closing full stop aside."""
    return " ".join(body.split()).casefold().rstrip(".")


def _new_hazards(old: str, new: str) -> str | None:
    """An edit may not add MDX hazards the file did not already have."""
    before = {msg for _, msg in find_hazards(old)}
    added = [f"line {line}: {msg}" for line, msg in find_hazards(new) if msg not in before]
    return f"unsafe MDX after edit ({'; '.join(added[:3])})" if added else None


def plan_new_sop(llm: LLM, *, cluster_id: uuid.UUID, entries: list[Entry], module: str, docs: dict[str, SopDoc], taken: set[str]) -> PlannedSop:
    """Name the cluster, draft the SOP, render it at the next free number of its module."""
    label, draft = draft_new_sop(llm, entries=entries, module=module)
    return place_new_sop(cluster_id=cluster_id, label=label, draft=draft, entries=entries, module=module, docs=docs, taken=taken)


def draft_new_sop(llm: LLM, *, entries: list[Entry], module: str) -> tuple[str, SopDraft]:
    """The model's part of a new SOP: the cluster's label, then the draft (independent of other clusters)."""
    label = llm.name_cluster(entries)
    return label, llm.draft_sop(NewSopRequest(module=module, cluster_label=label, entries=entries))


def place_new_sop(*, cluster_id: uuid.UUID, label: str, draft: SopDraft, entries: list[Entry], module: str,
                  docs: dict[str, SopDoc], taken: set[str]) -> PlannedSop:
    """Render a draft at the next free number of its module (after `taken`) and check it."""
    existing = [(d.path, d.sop_id, d.title) for d in docs.values()] + [(p, "", "") for p in taken]
    number = next_number(existing, module)
    folder, position = module_layout(module, [(d.path, d.module, d.content) for d in docs.values()])
    path, content = render_new_sop(module, number, draft, folder=folder, position=position)
    reason = _new_hazards("", content)
    parse_sop(path, content.encode("utf-8"))  # our own template must parse; raises SopError if not
    if reason:
        raise ValueError(f"new SOP {path}: {reason}")
    return PlannedSop(cluster_id, label, path, content, [e.id for e in entries])
