"""One edit call per SOP: every block an SOP gets in a run, written by one model call.

An edit call per (section, callout kind) block made an SOP with four blocks cost four calls,
each re-sending the SOP (issue 12). Here the blocks of one SOP go out together, with the
SOP's outline and the target sections (and their neighbours) instead of the whole file;
each block's anchor is still checked on its own, and the blocks whose anchor is not a line
of the SOP are asked for once more, together, with the error.
"""

from __future__ import annotations

from collections.abc import Mapping

from playbook_sync import callouts, excerpts
from playbook_sync.edits import AnchorError, PlannedBlock, anchor_section, plan_block
from playbook_sync.mdx import mdx_safe
from playbook_sync.providers.base import LLM, SopEditor
from playbook_sync.schemas import BlockAsk, CalloutDraft, CalloutKind, Entry, SopDoc, SopEditRequest

Groups = Mapping[tuple[str, CalloutKind], list[Entry]]  # (section, kind) → entries: edits.group_for_blocks


def request_for(doc: SopDoc, groups: Groups, lessons: list[str] | None = None) -> SopEditRequest:
    """The edit request for an SOP's blocks: outline, the target sections with their neighbours, each block."""
    shape, text = excerpts.for_edit(doc, [section for section, _ in groups])
    blocks = [BlockAsk(key=f"b{i}", section=section, kind=kind, entries=entries)
              for i, ((section, kind), entries) in enumerate(groups.items(), start=1)]
    return SopEditRequest(sop_path=doc.path, sop_title=doc.title, blocks=blocks, outline=shape, excerpts=text,
                          lessons=lessons or [])


def plan_sop(llm: LLM, doc: SopDoc, groups: Groups, lessons: list[str] | None = None) -> list[PlannedBlock | Exception]:
    """A planned block (or why not) per group, in the groups' order, from one edit call (two if anchors miss).

    A provider without write_callouts (a custom one) is asked block by block, as before.
    A failed call raises: every block of the SOP waits for the next run.
    """
    if not isinstance(llm, SopEditor):
        return [_guarded(lambda s=section, k=kind, g=group: plan_block(llm, doc, k, s, g, lessons=lessons))
                for (section, kind), group in groups.items()]
    request = request_for(doc, groups, lessons)
    drafts = llm.write_callouts(request)
    results: dict[str, PlannedBlock | Exception] = {}
    missed: dict[str, str] = {}
    for block in request.blocks:
        planned, problem = _planned(doc, block, drafts[block.key])
        if problem:
            missed[block.key] = problem
        else:
            results[block.key] = planned
    if missed:
        feedback = "; ".join(f"block {key}: {problem}" for key, problem in missed.items())
        again = request.model_copy(update={"blocks": [b for b in request.blocks if b.key in missed], "feedback": feedback})
        redrafts = llm.write_callouts(again)
        for block in again.blocks:
            planned, problem = _planned(doc, block, redrafts[block.key])
            results[block.key] = AnchorError(f"{problem} (asked twice)") if problem else planned
    return [results[b.key] for b in request.blocks]


def _planned(doc: SopDoc, block: BlockAsk, draft: CalloutDraft) -> tuple[PlannedBlock | Exception | None, str | None]:
    """The block rendered at its anchor's section (or the rendering error), or the anchor's problem."""
    anchored, problem = anchor_section(doc, draft.anchor)
    if problem:
        return None, problem
    # The anchor's section, still subject to the kind's placement rules (as edits.plan_block).
    section = callouts.choose_section(doc, block.kind, anchored.heading if anchored is not None else block.section)
    try:
        text = callouts.render_block(block.kind, mdx_safe(draft.body), {e.transcript_type for e in block.entries},
                                     callouts.attribution(block.entries))
    except ValueError as exc:
        return exc, None
    return PlannedBlock(doc.path, section.heading, block.kind, text, [e.id for e in block.entries]), None


def _guarded(call):
    try:
        return call()
    except Exception as exc:  # one block's failure defers its entries only
        return exc
