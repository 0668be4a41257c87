"""A run refuses to commit a file that fails validation, even when the earlier checks let it through."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import callouts, edits, pipeline, sop_edits, store
from playbook_sync.models import RunItem
from playbook_sync.providers.offline import OfflineLLM
from playbook_sync.schemas import CalloutDraft, CalloutRequest
from tests.support import entry

pytestmark = pytest.mark.integration
DISCOVERY = "docs/sops/module-3/sop-3-1-run-a-discovery-call.md"


class BraceLLM(OfflineLLM):
    """Writes a callout with an MDX expression in it for the discovery-call SOP."""

    def write_callout(self, request: CalloutRequest) -> CalloutDraft:
        draft = super().write_callout(request)
        return CalloutDraft(body=draft.body + " Budget {amount} first.") if request.sop_path == DISCOVERY else draft


def test_a_file_failing_validation_is_not_committed_and_its_entries_are_deferred(deps, monkeypatch):
    # Simulate a gap in the earlier safety nets (sanitizer and per-edit hazard check): the
    # commit gate must still keep the broken file out of the commit.
    monkeypatch.setattr(edits, "mdx_safe", lambda text: text)
    monkeypatch.setattr(sop_edits, "mdx_safe", lambda text: text)
    monkeypatch.setattr(callouts, "mdx_safe", lambda text: text)
    monkeypatch.setattr(edits, "_new_hazards", lambda old, new: None)
    deps.llm = BraceLLM()
    texts = ["On discovery calls, asking the prospect to rank their three biggest revenue problems by cost made the budget question easy.",
             "LinkedIn connection requests without a note were accepted more often than ones with a pitch in the note."]
    entries = [entry(t, created_at=datetime.now(UTC), source=f"call-{i}") for i, t in enumerate(texts)]
    with deps.session() as s:
        store.upsert_entries(s, entries=entries)
    head = deps.repo.head()
    outcome = pipeline.run_inline(deps)
    assert outcome["commit_sha"] and DISCOVERY not in outcome["sops_enriched"] and outcome["sops_enriched"]
    assert deps.repo.read_file(DISCOVERY) == deps.repo.read_file(DISCOVERY, head)
    with deps.session() as s:
        item = s.scalar(select(RunItem).where(RunItem.run_id == uuid.UUID(outcome["run_id"]), RunItem.entry_id == entries[0].id))
    assert item.status == "deferred" and f"validation failed for {DISCOVERY}" in item.error and "MDX expression" in item.error
