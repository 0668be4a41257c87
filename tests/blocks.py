"""Callout blocks read back from the SOP files themselves (not from what the database recorded)."""

from __future__ import annotations

import re
from collections import Counter

from playbook_sync.callouts import ATTRIBUTION_PREFIX, CLOSER, OPENERS

# Entries built by tagged() open with "Ref qx<number>:", so their lead sentence (which the
# offline LLM copies into the block body) names them: a block in a file names its entries
# without the database.
MARKER = re.compile(r"\bref qx(\d+)\b", re.IGNORECASE)


def blocks_in(text: str) -> list[str]:
    """Every callout block (opener, body, [attribution line,] closer) in one file, in order."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line in OPENERS:
            size = next((n for n in (3, 4) if len(lines) >= i + n and lines[i + n - 1] == CLOSER), 0)
            if size and lines[i + 1].strip() and (size == 3 or lines[i + 2].startswith(ATTRIBUTION_PREFIX)):
                found.append("\n".join(lines[i:i + size]))
    return found


def duplicate_blocks(tree: dict[str, bytes]) -> list[str]:
    """Problems in a docs tree: a block that appears twice in one SOP, or an entry marker in two blocks of one SOP."""
    problems = []
    for path, raw in sorted(tree.items()):
        found = blocks_in(raw.decode("utf-8", "replace"))
        problems += [f"{path}: block twice: {b!r}" for b, n in Counter(found).items() if n > 1]
        markers = Counter(m for b in set(found) for m in set(MARKER.findall(b)))
        problems += [f"{path}: entry qx{m} in {n} blocks" for m, n in markers.items() if n > 1]
    return problems


def tagged(content: str, number: int) -> str:
    """content opening with its marker (the lead sentence may end in . ! or ?, so the start it is)."""
    return f"Ref qx{number}: {content}"
