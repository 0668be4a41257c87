"""Lessons reach the classify and edit prompts in the per-call task part; the cached prefix does not change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from playbook_sync import prompts
from playbook_sync.providers.structured import classify_parts, edit_parts, one_block
from playbook_sync.schemas import CalloutKind, CalloutRequest, Candidate, ClassifyRequest, Entry

pytestmark = pytest.mark.unit
LESSON = "Editors removed 2 field tip callouts from this SOP: propose one here only when the entry adds a step detail."
ENTRY = Entry(id=uuid.uuid4(), category="insight", content="Name the competitor in the subject line.",
              transcript_type="coaching", created_at=datetime(2026, 11, 1, tzinfo=UTC))


def test_classify_lessons_follow_the_cached_parts():
    prompt = prompts.load("classify_entry")
    candidate = Candidate(sop_path="docs/a.md", title="A", section="Steps", similarity=0.8, band="strong", sop_text="# A")
    plain = classify_parts(prompt, ClassifyRequest(entry=ENTRY, candidates=[candidate]))
    taught = classify_parts(prompt, ClassifyRequest(entry=ENTRY, candidates=[candidate.model_copy(update={"lessons": [LESSON]})]))
    assert (taught.system, taught.blocks) == (plain.system, plain.blocks)  # the cacheable prefix is the same
    assert LESSON not in plain.task and LESSON in taught.task


def test_edit_lessons_follow_the_cached_parts():
    prompt = prompts.load("generate_edit")
    request = CalloutRequest(sop_path="docs/a.md", sop_title="A", section="Steps", kind=CalloutKind.field_tip,
                             entries=[ENTRY], section_text="## Steps", sop_text="# A\n## Steps")
    plain = edit_parts(prompt, one_block(request))  # the SOP's one edit call, with this block as its only one
    taught = edit_parts(prompt, one_block(request.model_copy(update={"lessons": [LESSON]})))
    assert (taught.system, taught.blocks) == (plain.system, plain.blocks)
    assert LESSON not in plain.task and taught.task.index(LESSON) > taught.task.index("Entries to merge")
