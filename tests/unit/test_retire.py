"""retire.retire_blocks: the one removal a run makes (our earlier aggregate), and nothing of anyone else's."""

from __future__ import annotations

import pytest

from playbook_sync.callouts import check_additive, insert_blocks, render_block
from playbook_sync.restatements import restated_removal
from playbook_sync.retire import retire_blocks
from playbook_sync.schemas import CalloutKind, TranscriptType

pytestmark = pytest.mark.unit

SOP = "---\nid: sop-1-1-x\n---\n# SOP\n\n## Why This Matters\n\nBecause.\n\n## Steps\n\nDo it.\n"
OLD = render_block(CalloutKind.results, "Across 3 executions this quarter, NPS rose a median 15 points.", {TranscriptType.report},
                   "3 execution reports of p, to 2026-12-01")
NEW = render_block(CalloutKind.results, "Across 9 executions this quarter, NPS rose a median 30 points.", {TranscriptType.report},
                   "9 execution reports of p, to 2026-12-08")


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("line", [8, 12])  # inside a section, and at the end of the file
def test_retiring_our_block_gives_back_the_file_it_was_inserted_into(eol: str, line: int) -> None:
    base = SOP.replace("\n", eol)
    with_old = insert_blocks(base, [(line, OLD)])
    assert retire_blocks(with_old, [OLD]) == base
    replaced = insert_blocks(retire_blocks(with_old, [OLD]), [(line, NEW)])
    assert check_additive(base, replaced) is None and check_additive(with_old, replaced) is not None


def test_a_missing_final_newline_stays_missing() -> None:
    base = SOP.rstrip("\n")
    assert retire_blocks(insert_blocks(base, [(12, OLD)]), [OLD]) == base


def test_a_block_a_person_changed_or_removed_is_not_retired() -> None:
    with_old = insert_blocks(SOP, [(8, OLD)])
    with pytest.raises(ValueError, match="not in the file as written"):
        retire_blocks(with_old.replace("15 points", "fifteen points"), [OLD])
    with pytest.raises(ValueError, match="not in the file as written"):
        retire_blocks(SOP, [OLD])
    with pytest.raises(ValueError):  # not a callout block at all: never removed
        retire_blocks(SOP, ["Because.\n"])


def test_a_restatement_of_a_removed_callout_is_found_and_a_new_question_is_not() -> None:
    from playbook_sync.providers.offline import OfflineEmbedder

    sop = ("# Handle Objections\n\n## Step 1: Acknowledge\n\nAcknowledge the objection before answering it.\n\n"
           "## Step 2: Reframe price\n\nReframe price objections as cost of inaction with numbers.\n")
    removed = [render_block(CalloutKind.question, "How should we answer the objection 'we tried an agency before "
                            "and it didn't work'?", {TranscriptType.sales}, "Priya Nair, sales call, 2026-11-20")]
    again = "How should we answer the objection 'we tried an agency before and it didn't work'? It came up again."
    assert restated_removal(again, sop, removed, OfflineEmbedder.features) is not None
    other = "Should we reframe price objections with a discount when the buyer is a startup?"
    assert restated_removal(other, sop, removed, OfflineEmbedder.features) is None
    assert restated_removal(again, sop, [], OfflineEmbedder.features) is None


def test_new_knowledge_in_the_words_of_a_removed_callout_is_not_a_restatement_of_it() -> None:
    from playbook_sync.providers.offline import OfflineEmbedder

    sop = "# Cold Email\n\n## Step 1: Write the subject line\n\nKeep cold email subject lines short; test them for opens.\n"
    removed = [render_block(CalloutKind.field_tip, "Cold email subject lines naming the prospect's competitor got twice the opens.",
                            {TranscriptType.coaching}, "Dana, coaching call, 2026-11-01")]
    new = "Cold email subject lines that name a mutual connection got more opens than generic ones."
    assert restated_removal(new, sop, removed, OfflineEmbedder.features) is None
