"""process_entry writes what it decided in one statement (hot_path.settle), and writing it again adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from playbook_sync import costs, demo, hot_path, lifecycle, pipeline, store
from playbook_sync.models import KnowledgeSopMatch, LlmCall, RunItem
from playbook_sync.schemas import Action, Candidate, Decision, ItemStatus
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.wiring import real_deps
from tests.support import sql_statements

pytestmark = pytest.mark.integration
WRITES = ("INSERT", "UPDATE", "DELETE", "WITH")


@pytest.fixture
def anthropic_fake():
    with FakeAnthropic() as fake:
        yield fake


def _state(deps, run_id) -> tuple[list, list, list]:
    """Items, match rows and call rows of the run, comparable across writes."""
    with deps.session() as s:
        items = [(i.entry_id, i.status, i.attempts, i.best_score, i.best_sop, i.prepared, i.error)
                 for i in s.scalars(select(RunItem).where(RunItem.run_id == run_id).order_by(RunItem.entry_id))]
        matches = sorted((m.knowledge_entry_id, m.sop_file_path or "", m.action, m.similarity_score, m.section, m.rationale,
                          m.confidence) for m in s.scalars(select(KnowledgeSopMatch).where(KnowledgeSopMatch.sync_run_id == run_id)))
        calls = sorted((c.entry_id, c.step, c.model, c.input_tokens, c.output_tokens, c.cache_write_tokens,
                        c.cache_read_tokens, c.cost_usd) for c in s.scalars(select(LlmCall).where(
                            LlmCall.run_id == run_id, LlmCall.step == "classify")))
    return items, matches, calls


def test_each_entry_is_written_in_one_statement_and_a_redelivered_task_adds_nothing(deps, anthropic_fake):
    real = real_deps(deps, anthropic_fake, None)
    with real.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    with real.session() as s:
        started = pipeline.start_run(s, real)
    # The first answer is unusable: that entry's re-ask makes two calls, both written with its item.
    anthropic_fake.reply_next("/v1/messages", {"id": "m", "type": "message", "role": "assistant",
                                               "model": "claude-opus-4-6", "content": [], "stop_reason": "end_turn",
                                               "usage": {"input_tokens": 700, "output_tokens": 3}})
    with sql_statements(real.settings.database_url) as statements:
        writes, outcomes = [], []
        for entry_id in started.entry_ids:
            statements.clear()
            with real.session() as s:
                outcomes.append(pipeline.process_entry(s, real, run_id=started.run_id, entry_id=entry_id))
            writes.append([q for q in statements if q.upper().startswith(WRITES)])
    assert all(len(w) == 1 and "UPDATE cp_sync_run_items" in w[0] for w in writes), writes
    classified = [w[0] for w in writes if "INSERT INTO cp_llm_calls" in w[0]]
    assert classified and all("INSERT INTO cp_knowledge_sop_matches" in w for w in classified)
    assert {o["status"] for o in outcomes} >= {ItemStatus.matched, ItemStatus.orphaned}

    items, matches, calls = before = _state(real, started.run_id)
    assert all(status != ItemStatus.pending and attempts == 1 for _, status, attempts, *_ in items)
    assert len(calls) == anthropic_fake.count("POST", "/v1/messages") == len(classified) + 1  # the re-ask's call too
    assert {m[0] for m in matches} == {i[0] for i in items}  # every entry's decision is logged

    # Redelivered: every task runs again; nothing is written, nothing is called.
    for entry_id in started.entry_ids:
        with real.session() as s:
            again = pipeline.process_entry(s, real, run_id=started.run_id, entry_id=entry_id)
        assert again["repeat"] is True
    assert _state(real, started.run_id) == before
    assert anthropic_fake.count("POST", "/v1/messages") == len(calls)


def test_settle_written_twice_is_written_once(deps):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC))[:1])
    with deps.session() as s:
        started = pipeline.start_run(s, deps)
    run_id, entry_id = started.run_id, started.entry_ids[0]
    candidates = [Candidate(sop_path=p, title=p, section="Steps", similarity=0.5 - i / 10, band="weak", sop_text="x")
                  for i, p in enumerate(["docs/a.md", "docs/b.md"])]
    answered = [Decision(sop_path=c.sop_path, action=Action.tangential, rationale="Off topic.", confidence=0.7)
                for c in candidates]
    meter = costs.Meter({}, run_id=run_id, entry_id=entry_id)
    meter.record("classify", "anthropic", "claude-opus-4-6", costs.Usage(10, 5, 0, 3))
    calls = costs.call_rows(meter)
    for _ in range(2):  # the same decision written again (a statement retried after it had landed)
        status, matches = lifecycle.decided(run_id=run_id, entry_id=entry_id, best_score=0.5, candidates=candidates,
                                            answered=answered)
        with deps.session() as s:
            hot_path.settle(s, run_id=run_id, entry_id=entry_id, status=status, attempts=1, best_score=0.5,
                            best_sop="docs/a.md", calls=calls, matches=matches)
    assert status == ItemStatus.orphaned
    with deps.session() as s:
        item = s.get(RunItem, (run_id, entry_id))
        assert (item.status, item.attempts, item.best_score, item.best_sop, item.prepared) == ("orphaned", 1, 0.5, "docs/a.md", None)
        assert s.scalar(select(func.count()).select_from(LlmCall).where(LlmCall.run_id == run_id,
                                                                        LlmCall.step == "classify")) == 1
        rows = s.execute(select(KnowledgeSopMatch.sop_file_path, KnowledgeSopMatch.action)
                         .where(KnowledgeSopMatch.sync_run_id == run_id)).all()
        assert sorted(rows, key=str) == sorted([("docs/a.md", "tangential"), ("docs/b.md", "tangential"),
                                                (None, "orphaned")], key=str)
