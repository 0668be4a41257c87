"""Retiring our own earlier aggregate: the one sanctioned removal from an SOP (DESIGN §2b).

An SOP has one `Results From the Field` aggregate, "updated additively as evidence grows": a newer
aggregate replaces the earlier one in place. That earlier block is ours (a rendered callout block
whose hash cp_outcome_callouts and cp_inserted_callouts record), and it is removed only when it is
still in the file exactly as we wrote it; everything else in the file is held to the additivity
check against the file without it. A person's rewrite of it is theirs, and is never touched.
"""

from __future__ import annotations

# The block grammar and line handling of callouts.py, so that what is removed here is exactly what
# insert_blocks would have inserted (private there: nothing else needs them).
from playbook_sync.callouts import _blank, _eol, _has_final_eol, _is_block, check_additive


def retire_blocks(content: str, blocks: list[str]) -> str:
    """`content` without the given blocks of ours, each found exactly as rendered, with the blank line
    insert_blocks put before it; ValueError when one is not there verbatim.

    The one sanctioned removal (DESIGN §2b): a run's newer `Results From the Field` aggregate replaces the
    SOP's earlier one, which is ours and tracked by its hash. The result is checked as the base the
    additivity check runs against: `content` must be it plus callout blocks and nothing else.
    """
    eol = _eol(content)
    lines = content.splitlines(keepends=True)
    for block in blocks:
        wanted = block.replace("\r\n", "\n").removesuffix("\n").split("\n")
        size = len(wanted)
        # Whole lines only (the file's last line may lack its line break: then so did the block).
        at = next((i for i in range(len(lines) - size + 1)
                   if all(line.endswith(("\n", "\r")) for line in lines[i : i + size - 1])
                   and (lines[i + size - 1].endswith(("\n", "\r")) or i + size == len(lines))
                   and [line.rstrip("\r\n") for line in lines[i : i + size]] == wanted), None)
        if at is None or not _is_block(wanted):
            raise ValueError(f"not in the file as written: {block[:80]!r}")
        del lines[at : at + size]
        # insert_blocks added a blank line before the block after a non-blank one, and one after it only
        # before a non-blank one: with blanks on both sides now (or at the end), one of them was ours.
        if at > 0 and _blank(lines[at - 1]) and (at == len(lines) or _blank(lines[at])):
            del lines[at - 1]
    kept = "".join(lines)
    if not _has_final_eol(content):
        kept = kept.removesuffix(eol)  # a missing final newline stays missing, as in insert_blocks
    if check_additive(kept, content) is not None:  # what went is whole callout blocks, nothing of anyone else's
        raise ValueError(f"removing {len(blocks)} block(s) would take more than callout blocks")
    return kept
