"""The pipeline's own additivity gate: an edit that would alter original bytes is dropped before the
commit and its entries are deferred with the reason. Judged from the raw files, not by check_additive."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import callouts, demo, pipeline, store
from playbook_sync.models import KnowledgeSopMatch, RunItem
from tests.blocks import blocks_in

pytestmark = pytest.mark.integration
TARGET = "docs/sops/module-2/sop-2-1-write-cold-email-copy.md"


def only_added_blocks(old: bytes, new: bytes) -> bool:
    """new is old with whole lines added, and every added line is blank or part of a callout block."""
    old_lines, new_lines = old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True)
    in_blocks = {line for b in blocks_in(new.decode()) for line in b.splitlines()}
    i = 0
    for line in new_lines:
        if i < len(old_lines) and line == old_lines[i]:
            i += 1
        elif line.strip() and line.rstrip("\r\n") not in in_blocks:
            return False
    return i == len(old_lines)


def test_an_edit_that_alters_the_original_is_never_committed_and_its_entries_wait(deps, monkeypatch):
    real_insert = callouts.insert_blocks
    original = deps.repo.read_tree("docs")[TARGET]

    def careless_insert(content: str, insertions):
        # What a buggy placement could do: insert the blocks, and also rewrite a word of one SOP.
        new = real_insert(content, insertions)
        return new.replace("subject line", "subject-line", 1) if "Write Cold Email Copy" in content else new

    monkeypatch.setattr(callouts, "insert_blocks", careless_insert)
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    base = deps.repo.head()
    outcome = pipeline.run_inline(deps)
    assert outcome["status"] == "success" and outcome["commit_sha"], outcome
    before, after = deps.repo.read_tree("docs", base), deps.repo.read_tree("docs", outcome["commit_sha"])

    # The targeted SOP is byte for byte what it was; every other changed SOP only gained blocks.
    assert b"subject line" in original and after[TARGET] == original
    changed = [p for p in before if after.get(p) != before[p]]
    assert changed and TARGET not in changed and TARGET not in outcome["sops_enriched"]
    assert all(only_added_blocks(before[p], after[p]) for p in changed), changed
    assert not [p for p in after if b"subject-line" in after[p]]

    # The entries the classifier sent there are deferred (owed to the next run), with the reason.
    with deps.session() as s:
        aimed = set(s.scalars(select(KnowledgeSopMatch.knowledge_entry_id).where(
            KnowledgeSopMatch.sync_run_id == outcome["run_id"], KnowledgeSopMatch.sop_file_path == TARGET,
            KnowledgeSopMatch.action == "enrich")))
        items = {i.entry_id: i for i in s.scalars(select(RunItem).where(RunItem.run_id == outcome["run_id"]))}
    assert aimed, "no entry was sent to the targeted SOP: the test proves nothing"
    rejected = [items[e] for e in aimed if items[e].status != "enriched"]
    assert rejected and all(i.status == "deferred" and f"edit to {TARGET} rejected" in (i.error or "") for i in rejected), [
        (i.status, i.error) for i in rejected]
