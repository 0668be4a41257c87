"""An entry that says again what a callout already says is redundant; a new tip about the step is not."""

from __future__ import annotations

import pytest

from playbook_sync.providers.offline import OfflineEmbedder
from playbook_sync.restatements import restated_callout, split

pytestmark = pytest.mark.unit

SOP = """---
id: sop-1-1-renewals
title: "SOP 1.1: Renewals"
---

# SOP 1.1: Renewals

## 1a. Renewal Window

Open the renewal window 120 days before the contract ends. The account manager checks usage,
the price increase and the multi-year terms with finance before the first renewal call.

Document the renewal forecast in the CRM with the owner and the date.

:::tip From the Field
Confirm the executive sponsor before the renewal window opens; late sponsors stall the price increase.
— Dana Whitfield, coaching call, 2026-11-20
:::

## 1b. Churn Risk Review

Review health scores weekly. Escalate accounts whose support tickets doubled in a month.

## References

Renewal policy, pricing sheet, contract templates.
"""


def test_split_separates_callouts_from_the_sops_own_text():
    callouts, sections = split(SOP)
    assert callouts == ["Confirm the executive sponsor before the renewal window opens; late sponsors stall the price increase."]
    assert not any("executive sponsor" in s for s in sections) and any(s.startswith("1b. Churn Risk Review") for s in sections)


def test_a_block_written_before_attribution_lines_is_read_without_its_inline_credit():
    old = SOP.replace(".\n— Dana Whitfield", ". -- Dana Whitfield")
    assert split(old)[0] == split(SOP)[0]


def test_a_restatement_in_other_words_is_found():
    said_again = "Same lesson again on the Globex call: get the executive sponsor first, then the price increase."
    found = restated_callout(said_again, SOP, OfflineEmbedder.features)
    assert found is not None and found[0].startswith("Confirm the executive sponsor") and found[1] > found[2]


def test_a_new_tip_about_another_step_is_not():
    new_tip = "Escalate accounts whose support tickets doubled; the health scores lag by weeks."
    assert restated_callout(new_tip, SOP, OfflineEmbedder.features) is None


def test_an_sop_without_callouts_restates_nothing():
    plain = SOP.split(":::tip")[0]
    assert restated_callout("Confirm the executive sponsor before the renewal window.", plain, OfflineEmbedder.features) is None


def test_a_block_that_repeats_a_callout_of_the_sop_is_not_written_again():
    # The hostile finding: a near-copy of an entry ("... Variant 3: w w.") got past the classifier (the
    # figure made it look like new evidence), the drafted block said exactly what last week's callout says,
    # and the SOP showed the same tip twice under two dates. The same text from two blocks of one run, too.
    import uuid

    from playbook_sync.callouts import render_block
    from playbook_sync.edits import PlannedBlock, apply_blocks
    from playbook_sync.schemas import CalloutKind

    path = "docs/sops/module-1/sop-1-1-renewals.md"

    def planned(body: str, credit: str) -> PlannedBlock:
        return PlannedBlock(path, "1a. Renewal Window", CalloutKind.field_tip,
                            render_block(CalloutKind.field_tip, body, {"coaching"}, credit), [uuid.uuid4()])

    again = planned("confirm the executive sponsor before the renewal window opens;  late sponsors stall the price increase",
                    "Priya Nair, coaching call, 2026-12-02")
    new, twin = (planned("Send the renewal quote two weeks before the call.", f"Sam Lee, coaching call, 2026-12-0{i}")
                 for i in (1, 2))
    applied = apply_blocks({path: SOP.encode()}, [again, new, twin], "docs")
    assert applied.repeated == [again, twin] and applied.blocks == [new]
    written = applied.files[path].decode()
    assert written.count("Confirm the executive sponsor") == 1 and written.count("Send the renewal quote") == 1


def test_a_callout_body_is_read_as_the_page_shows_it():
    """mdx_safe writes tag-looking text and braces as character references; compared decoded."""
    escaped = SOP.replace("late sponsors stall", "&lt;Too expensive&gt; &#123;price&#125; stall")
    assert split(escaped)[0] == ["Confirm the executive sponsor before the renewal window opens; "
                                 "<Too expensive> {price} stall the price increase."]
