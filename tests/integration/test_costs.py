"""A whole run on the real SDKs (fake services): every call metered, the run's cost = the sum of its calls."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from playbook_sync import costs, demo, pipeline, store
from playbook_sync.config import Price
from playbook_sync.models import LlmCall, RunItem, SyncRun
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.wiring import real_deps

pytestmark = pytest.mark.integration

# Deliberately not the list prices, so the test proves the configured table is used.
PRICES = {
    "claude-opus-4-6": Price(input=10.0, output=30.0, cache_write=12.5, cache_read=1.0),
    "claude-sonnet-4-6": Price(input=2.0, output=4.0, cache_write=2.5, cache_read=0.2),
    "text-embedding-3-small": Price(input=0.5),
}


@pytest.fixture
def services():
    with FakeAnthropic() as anthropic_fake, FakeOpenAI() as openai_fake:
        yield anthropic_fake, openai_fake


def expected_cost(call: LlmCall) -> float:
    price = PRICES[call.model]
    write = price.cache_write if price.cache_write is not None else price.input * 1.25
    read = price.cache_read if price.cache_read is not None else price.input * 0.1
    dollars = (call.input_tokens * price.input + call.output_tokens * price.output + call.cache_write_tokens * write
               + call.cache_read_tokens * read) / 1e6
    return dollars / 2 if call.batch else dollars


def test_a_runs_stored_cost_is_the_sum_of_its_calls_at_the_configured_prices(deps, services):
    anthropic_fake, openai_fake = services
    real = real_deps(deps, anthropic_fake, openai_fake, prices=PRICES)
    anthropic_fake.min_cache_tokens = 200  # the demo's prompts are short: a minimum they clear, so caching shows
    with real.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC)))
    # The first classification answer is unusable twice: that entry fails, its two calls still count.
    garbage = {"id": "m", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "content": [],
               "stop_reason": "end_turn", "usage": {"input_tokens": 700, "output_tokens": 3}}
    anthropic_fake.reply_next("/v1/messages", garbage, count=2)
    outcome = pipeline.run_inline(real)
    assert outcome["status"] == "partial" and outcome["failed"] == 1 and outcome["enriched"] > 0

    with real.session() as s:
        run = s.get(SyncRun, outcome["run_id"])
        calls = list(s.scalars(select(LlmCall).where(LlmCall.run_id == run.id)))
        failed = s.scalars(select(RunItem).where(RunItem.run_id == run.id, RunItem.status == "failed")).one()
        run_cost, usage = run.cost_usd, run.usage
    assert "classify answer still invalid after 2 attempts" in failed.error
    assert {c.step for c in calls} >= {"embed", "classify", "edit"}
    assert sum(1 for c in calls if c.entry_id == failed.entry_id and c.step == "classify") == 2

    # the stored cost is the sum over the calls, each priced from its tokens by the table above
    assert run_cost == pytest.approx(sum(expected_cost(c) for c in calls), rel=1e-9)
    assert all(c.cost_usd == pytest.approx(expected_cost(c), rel=1e-9) for c in calls)
    assert run_cost > 0 and outcome["cost_usd"] == pytest.approx(run_cost, abs=1e-6)
    # tokens are the ones the services reported
    anthropic_calls = [c for c in calls if c.provider == "anthropic"]
    assert len(anthropic_calls) == anthropic_fake.count("POST", "/v1/messages")
    assert sum(c.input_tokens for c in anthropic_calls) == sum(u["input_tokens"] for u in anthropic_fake.usages) + 1400
    assert sum(c.cache_read_tokens for c in anthropic_calls) == sum(u["cache_read_input_tokens"] for u in anthropic_fake.usages)
    assert sum(c.cache_read_tokens for c in anthropic_calls) > 0  # later calls of a step read the cached rubric
    embed = [c for c in calls if c.step == "embed"]
    assert sum(c.input_tokens for c in embed) == sum(r["tokens"] for r in openai_fake.embedding_requests)
    # per step, as stored on the run and shown by the CLI
    assert set(usage["steps"]) == {c.step for c in calls} and calls  # the loop below checks every step
    for step, row in usage["steps"].items():
        mine = [c for c in calls if c.step == step]
        assert row["calls"] == len(mine) and row["cost_usd"] == pytest.approx(sum(c.cost_usd for c in mine), abs=1e-6)
    assert costs.summarize(usage).startswith(f"${run_cost:.4f} (classify $")


def test_offline_runs_record_no_calls_and_cost_nothing(deps):
    with deps.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC))[:5])
    outcome = pipeline.run_inline(deps)
    assert outcome["cost_usd"] == 0.0
    with deps.session() as s:
        assert s.scalars(select(LlmCall)).all() == []


def test_edit_plans_with_invented_anchors_defer_their_entries(deps, services):
    anthropic_fake, openai_fake = services

    def responder(name, schema, prompt):
        from tests.fakes.answers import default_answer

        answer = default_answer(name, schema, prompt)
        if name != "write_callouts":
            return answer
        return {"callouts": [c | {"anchor": "A line no SOP has."} for c in answer["callouts"]]}

    anthropic_fake.responder = responder
    real = real_deps(deps, anthropic_fake, openai_fake)
    with real.session() as s:
        store.upsert_entries(s, entries=demo.entries(datetime.now(UTC))[:8])
    outcome = pipeline.run_inline(real)
    assert outcome["status"] == "success" and outcome["enriched"] == 0 and outcome["deferred"] > 0
    # No callout landed; a commit happens only for new SOPs (clusters of orphans), never for an edit.
    assert outcome["sops_enriched"] == [] and bool(outcome["commit_sha"]) == bool(outcome["sops_created"])
    with real.session() as s:
        deferred = s.scalars(select(RunItem).where(RunItem.run_id == outcome["run_id"], RunItem.status == "deferred")).all()
        edits = s.scalars(select(LlmCall).where(LlmCall.run_id == outcome["run_id"], LlmCall.step == "edit")).all()
    by_anchor = [i for i in deferred if "is not a line of" in (i.error or "")]
    assert by_anchor and all("asked twice" in i.error for i in by_anchor)
    asked = [b["messages"][0]["content"][-1]["text"] for b in anthropic_fake.posts("/v1/messages")
             if b["tools"][0]["name"] == "write_callouts"]
    retries = [t for t in asked if "Your previous answer was rejected" in t]  # plans run concurrently
    assert len(edits) == len(asked) == 2 * len(retries)  # each plan asked twice, both calls paid for
    assert all("anchor 'A line no SOP has.' is not a line of" in t for t in retries)
