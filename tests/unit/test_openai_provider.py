"""The OpenAI provider through the real SDK against a fake Embeddings / Chat Completions API."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from playbook_sync import costs
from playbook_sync.config import Settings
from playbook_sync.deps import build_embedder, build_llm
from playbook_sync.pipeline import embed_all
from playbook_sync.providers import retry
from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.chunking import spans
from playbook_sync.providers.offline import OfflineEmbedder
from playbook_sync.providers.openai import OpenAIEmbedder, OpenAILLM
from playbook_sync.providers.structured import CLASSIFY
from playbook_sync.schemas import (
    Action,
    CalloutKind,
    CalloutRequest,
    Candidate,
    ClassifyRequest,
    Entry,
    NewSopRequest,
)
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.unit

WORDS = ["alpha", "delta", "echo", "golf", "hotel", "india", "mike", "november",  # one token each
         "red", "blue", "green", "gold", "tree", "house", "river", "stone"]


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def settings_for(fake: FakeOpenAI, **overrides) -> Settings:
    values = {"openai_api_key": fake.api_key, "openai_base_url": fake.api_url, "embedder": "openai", "llm": "openai",
              "embedding_dimensions": 64, "llm_retry_base_seconds": 0.01, "llm_timeout_seconds": 5.0}
    return Settings(_env_file=None, **(values | overrides))


def texts(n: int, words: int) -> list[str]:
    """n distinct texts of about `words` tokens each (one token per word)."""
    return [f"entry {i}: " + " ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)) for i in range(n)]


# -- embeddings ---------------------------------------------------------------------------------


def test_spans_respect_both_limits():
    assert spans([1] * 5, max_items=2) == [(0, 2), (2, 4), (4, 5)]
    assert spans([4, 4, 4, 1], max_items=10, max_total=8) == [(0, 2), (2, 4)]
    assert spans([9, 1], max_items=10, max_total=8) == [(0, 1), (1, 2)]  # an oversize item goes alone
    assert spans([], max_items=3) == []


def test_5000_short_entries_take_exactly_3_requests_by_the_input_limit(fake):
    embedder = build_embedder(settings_for(fake))
    assert isinstance(embedder, OpenAIEmbedder) and embedder.model == "text-embedding-3-small"
    vectors = embed_all(embedder, texts(5000, 20))
    assert [r["inputs"] for r in fake.embedding_requests] == [2048, 2048, 904]
    assert len(vectors) == 5000 and all(r["dimensions"] == 64 for r in fake.embedding_requests)


def test_5000_long_entries_take_exactly_3_requests_by_the_token_budget(fake):
    # 2,048 of these would be ~350k tokens: the fake (like the API) refuses more than 300k.
    embedder = build_embedder(settings_for(fake))
    corpus = texts(5000, 165)
    vectors = embed_all(embedder, corpus)
    sent = fake.embedding_requests
    assert len(sent) == 3 and all(r["tokens"] <= 300_000 for r in sent) and sent[0]["inputs"] < 2048
    assert sum(r["inputs"] for r in sent) == 5000 and embedder.calls == 3
    # results map back in order: vector i is the offline vector of text i at 64 dimensions
    expected = OfflineEmbedder(dimensions=64).embed([corpus[0], corpus[4999]])
    assert np.allclose([vectors[0], vectors[4999]], expected, atol=1e-6)


def test_an_input_over_the_remaining_budget_splits_the_batch(fake):
    embedder = build_embedder(settings_for(fake))
    big = texts(40, 8000)  # 40 x ~8,000 tokens: 37 fit in 300k, the 38th opens a second request
    embed_all(embedder, big)
    assert [r["inputs"] for r in fake.embedding_requests] == [37, 3]


def test_an_input_over_the_model_limit_is_truncated_with_a_recorded_warning(fake):
    embedder = build_embedder(settings_for(fake))
    meter = costs.Meter(Settings(_env_file=None).prices, run_id=None)
    with costs.using(meter):
        vectors = embed_all(embedder, ["short text", texts(1, 9000)[0]])
    assert len(vectors) == 2 and fake.embedding_requests[0]["tokens"] <= 8191 + 3
    assert meter.warnings == [("embedding input 'entry 0: alpha delta echo golf hotel india mike november red'... "
                               "truncated from 9004 to 8191 tokens (text-embedding-3-small limit); "
                               "its tail is not matched")]
    assert meter.calls[0].step == "embed" and meter.calls[0].usage.input_tokens == fake.embedding_requests[0]["tokens"]


def test_embed_refuses_a_batch_over_the_limits_instead_of_sending_it(fake):
    embedder = build_embedder(settings_for(fake, embedding_batch_size=3))
    with pytest.raises(ProviderError, match="exceeds 3 inputs"):
        embedder.embed(["a", "b", "c", "d"])
    assert fake.embedding_requests == []


def test_embedding_errors_are_retried_or_reported(fake):
    embedder = build_embedder(settings_for(fake))
    fake.fail_next("/v1/embeddings", 503)
    assert len(embedder.embed(["hello"])) == 1 and fake.count("POST", "/v1/embeddings") == 2
    wrong = build_embedder(settings_for(fake, openai_api_key="sk-proj-notTheRightKey0123456789"))
    with pytest.raises(retry.AuthError) as raised:
        wrong.embed(["hello"])
    message = str(raised.value)
    assert "PLAYBOOK_SYNC_OPENAI_API_KEY (or OPENAI_API_KEY)" in message
    assert "sk-proj-" not in message and "[redacted-key]" in message  # the service's masked echo is scrubbed too


# -- LLM steps on Chat Completions ---------------------------------------------------------------


def entry(content: str, **kw) -> Entry:
    return Entry(id=uuid.uuid4(), category=kw.get("category", "insight"), content=content,
                 transcript_type=kw.get("transcript_type", "sales"), tags=["email"])


SOP = "---\nid: x\ntitle: X\n---\n\n# X\n\n## Steps\n\nWrite a short subject.\n\n## Common Mistakes\n\nToo long.\n"


def test_the_four_steps_work_on_openai_with_a_strict_json_schema(fake):
    llm = build_llm(settings_for(fake))
    assert isinstance(llm, OpenAILLM)
    request = ClassifyRequest(entry=entry("Name the competitor in the subject."), candidates=[
        Candidate(sop_path="docs/x.md", title="X", section="Steps", similarity=0.8, band="strong", sop_text=SOP)])
    meter = costs.Meter(Settings(_env_file=None).prices, run_id=None)
    with costs.using(meter):
        assert [d.action for d in llm.classify(request)] == [Action.enrich]
        assert [d.action for d in llm.classify(request)] == [Action.enrich]
        draft = llm.write_callout(CalloutRequest(sop_path="docs/x.md", sop_title="X", section="Common Mistakes",
                                                 kind=CalloutKind.question, entries=[entry("Can we skip the intro?",
                                                                                           category="question")],
                                                 section_text="## Common Mistakes\n\nToo long.\n", sop_text=SOP))
        label = llm.name_cluster([request.entry])
        sop = llm.draft_sop(NewSopRequest(module="module-1", cluster_label=label, entries=[request.entry]))
    assert draft.anchor == "## Common Mistakes" and draft.callout_type == "warning" and draft.body
    assert label and sop.steps == ["Name the competitor in the subject."]
    first = fake.bodies("/v1/chat/completions")[0]
    assert first["model"] == "gpt-5" and first["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "record_classification", "description": CLASSIFY.description, "schema": CLASSIFY.schema, "strict": True}}
    user = first["messages"][1]["content"]
    assert user.index("## Steps\n\nWrite a short subject.") < user.index("Name the competitor")  # excerpt, then the entry
    assert fake.bodies("/v1/chat/completions")[2]["response_format"]["json_schema"]["name"] == "write_callouts"
    assert fake.bodies("/v1/chat/completions")[3]["model"] == "gpt-5-mini"  # cluster naming: the cheaper model
    assert meter.calls[1].usage.cache_read_tokens > 0 and meter.calls[0].usage.cache_read_tokens == 0
    assert [c.step for c in meter.calls] == ["classify", "classify", "edit", "cluster", "new_sop"]


def test_an_unparsable_chat_answer_ends_as_a_clear_error(fake):
    llm = build_llm(settings_for(fake, llm_output_retries=1))
    bad = {"id": "c", "object": "chat.completion", "created": 0, "model": "gpt-5",
           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "enrich!"}}]}
    fake.reply_next("/v1/chat/completions", bad, count=2)
    with pytest.raises(ProviderError, match="classify answer still invalid after 2 attempts: answer is not valid JSON"):
        llm.classify(ClassifyRequest(entry=entry("x."), candidates=[
            Candidate(sop_path="docs/x.md", title="X", section="", similarity=0.8, band="strong", sop_text=SOP)]))


def test_batch_mode_needs_the_anthropic_provider(fake):
    with pytest.raises(ValueError, match="PLAYBOOK_SYNC_LLM_BATCH: needs PLAYBOOK_SYNC_LLM=anthropic"):
        build_llm(settings_for(fake, llm_batch=True))


def test_a_price_override_keeps_the_other_list_prices(monkeypatch):
    monkeypatch.setenv("PLAYBOOK_SYNC_PRICES", '{"gpt-5": {"input": 1, "output": 2}}')
    prices = Settings(_env_file=None).prices
    assert (prices["gpt-5"].input, prices["gpt-5"].output) == (1.0, 2.0)
    assert prices["claude-opus-4-6"].output == 25.0
    assert costs.price_of(prices, "claude-sonnet-4-6-20260101") is prices["claude-sonnet-4-6"]  # dated ids
