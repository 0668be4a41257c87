"""The Anthropic provider through the real SDK against a fake Messages API on 127.0.0.1."""

from __future__ import annotations

import uuid

import pytest

from playbook_sync import costs
from playbook_sync.config import Settings
from playbook_sync.deps import build_llm
from playbook_sync.edits import AnchorError, group_for_blocks
from playbook_sync.new_sop import render_new_sop
from playbook_sync.providers import retry
from playbook_sync.providers.anthropic import AnthropicLLM
from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.structured import CLASSIFY, EDIT
from playbook_sync.schemas import (
    Action,
    Candidate,
    ClassifyRequest,
    Entry,
    NewSopRequest,
)
from playbook_sync.sop_edits import plan_sop
from playbook_sync.sops import parse_sop
from tests.fakes import answers
from tests.fakes.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.unit

SOP_A = """---
id: sop-2-1-write-cold-email-copy
title: "SOP 2.1: Write Cold Email Copy"
---

# SOP 2.1: Write Cold Email Copy

## Why This Matters

Cold email is the cheapest channel we have.

## Steps

### Step 1: Write the subject line

Keep it under six words.

## Common Mistakes

Sending the same template to every segment.
"""
SOP_B = SOP_A.replace("2-1-write-cold-email-copy", "2-3-build-a-follow-up-sequence").replace("Write Cold Email Copy",
                                                                                              "Build a Follow-Up Sequence")


# Long enough that the classifier is shown an excerpt, not the whole file.
APPENDIX = "".join(f"\n## Appendix {i}\n\n" + "Filler words about nothing in particular. " * 40 for i in range(12))
LONG_A, LONG_B = SOP_A + APPENDIX, SOP_B + APPENDIX


def entry(content: str = "Subject lines that name the competitor doubled our open rate. Try it first.", **kw) -> Entry:
    return Entry(id=uuid.uuid4(), category=kw.get("category", "insight"), content=content,
                 transcript_type=kw.get("transcript_type", "coaching"), tags=kw.get("tags", ["email"]))


def candidates(*texts: str) -> list[Candidate]:
    paths = ["docs/sops/module-2/sop-2-1.md", "docs/sops/module-2/sop-2-3.md"]
    return [Candidate(sop_path=paths[i], title=parse_sop(paths[i], t.encode()).title, section="Steps",
                      similarity=0.8 - i / 10, band="strong", sop_text=t) for i, t in enumerate(texts)]


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def settings_for(fake: FakeAnthropic, **overrides) -> Settings:
    values = {"anthropic_api_key": fake.api_key, "anthropic_base_url": fake.base_url, "llm": "anthropic",
              "llm_retry_base_seconds": 0.01, "llm_timeout_seconds": 5.0}
    return Settings(_env_file=None, **(values | overrides))


def metered(fn):
    meter = costs.Meter(Settings(_env_file=None).prices, run_id=None)
    with costs.using(meter):
        result = fn()
    return result, meter


# -- classification request and parsing -------------------------------------------------------


def test_classification_sends_outlines_and_best_sections_and_caches_only_the_shared_prefix(fake):
    llm = build_llm(settings_for(fake))
    assert isinstance(llm, AnthropicLLM)
    first = ClassifyRequest(entry=entry(), candidates=candidates(LONG_A, LONG_B))
    decisions, meter = metered(lambda: llm.classify(first))
    assert [(d.sop_path, d.action) for d in decisions] == [(c.sop_path, a) for c, a in
                                                             zip(first.candidates, [Action.enrich, Action.tangential])]
    assert decisions[0].section == "Steps" and 0 <= decisions[0].confidence <= 1 and decisions[0].rationale

    body = fake.bodies("/v1/messages")[0]
    assert body["model"] == "claude-opus-4-6"
    assert body["tools"] == [{"name": "record_classification", "description": CLASSIFY.description,
                              "input_schema": CLASSIFY.schema, "strict": True}]
    assert body["tool_choice"] == {"type": "tool", "name": "record_classification"}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    sop_a, sop_b, task = body["messages"][0]["content"]
    # Per candidate its outline and best-matching section (with its subsections), not the whole file.
    assert "- Steps\n  - Step 1: Write the subject line\n- Common Mistakes" in sop_a["text"]
    assert "### Step 1: Write the subject line\n\nKeep it under six words." in sop_a["text"]
    assert "Cold email is the cheapest channel" not in sop_a["text"] and "Build a Follow-Up Sequence" in sop_b["text"]
    # Excerpts differ per entry: a breakpoint there would pay writes nobody reads.
    assert all("cache_control" not in block for block in (sop_a, sop_b, task))
    assert first.entry.content in task["text"]  # the varying part comes last
    # The tool + system prefix is under the model's minimum cacheable length: the service caches nothing.
    assert meter.calls[0].usage.cache_write_tokens == 0 and meter.calls[0].usage.cache_read_tokens == 0


def test_the_shared_prefix_is_written_once_and_read_by_later_calls():
    with FakeAnthropic(min_cache_tokens=200) as fake:  # a model whose minimum the rubric clears
        llm = build_llm(settings_for(fake))
        ask = lambda text, *sops: metered(lambda: llm.classify(ClassifyRequest(entry=entry(text), candidates=candidates(*sops))))[1]  # noqa: E731
        first = ask("Name the competitor.", LONG_A)  # an excerpt: only the rubric is cached
        second = ask("Mention a mutual customer in line one.", LONG_B)
        short = ask("Keep subjects short.", SOP_A)  # a short SOP is sent whole: its block is cached too
        again = ask("Put the number in the subject.", SOP_A, SOP_B)  # same best SOP: the prefix up to it is read
        bodies = fake.bodies("/v1/messages")
    rubric = first.calls[0].usage.cache_write_tokens
    assert rubric > 0 and first.calls[0].usage.cache_read_tokens == 0
    assert second.calls[0].usage.cache_read_tokens == rubric and second.calls[0].usage.cache_write_tokens == 0
    assert second.calls[0].usage.cache_read_tokens == fake.usages[1]["cache_read_input_tokens"]  # read from the response
    assert second.calls[0].cost_usd < first.calls[0].cost_usd  # cache reads are billed at a tenth
    assert "cache_control" not in bodies[0]["messages"][0]["content"][0]
    assert bodies[2]["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "The whole SOP:" in bodies[2]["messages"][0]["content"][0]["text"]
    assert short.calls[0].usage.cache_read_tokens == rubric and short.calls[0].usage.cache_write_tokens > 0
    assert again.calls[0].usage.cache_read_tokens == rubric + short.calls[0].usage.cache_write_tokens
    assert "cache_control" not in bodies[3]["messages"][0]["content"][1]  # only the first (best) block


def _tool_message(answer) -> dict:
    return {"id": "msg_x", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
            "content": [{"type": "tool_use", "id": "toolu_x", "name": "record_classification", "input": answer}],
            "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def _valid(request: ClassifyRequest) -> dict:
    return {"decisions": [{"sop_path": c.sop_path, "action": "redundant", "section": "", "rationale": "Covered.",
                           "confidence": 0.9} for c in request.candidates]}


BAD_ANSWERS = {
    "malformed": (_tool_message({"decisions": "enrich"}), "decisions: Input should be a valid list"),
    "no tool call": ({**_tool_message({}), "content": [{"type": "text", "text": "I think enrich."}],
                      "stop_reason": "end_turn"}, "no 'record_classification' tool call"),
    "unknown action": (_tool_message({"decisions": [{"sop_path": "docs/sops/module-2/sop-2-1.md", "action": "merge",
                                                     "section": "", "rationale": "x", "confidence": 0.5}]}),
                       "decisions.0.action: Input should be 'enrich', 'redundant' or 'tangential'"),
    "not json": ("{not json", "response body is not JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_a_bad_answer_is_asked_again_then_ends_as_a_clear_error(fake, case):
    body, expected = BAD_ANSWERS[case]
    llm = build_llm(settings_for(fake, llm_output_retries=1))
    request = ClassifyRequest(entry=entry(), candidates=candidates(SOP_A))
    fake.reply_next("/v1/messages", body, count=2)
    with pytest.raises(ProviderError, match="classify answer still invalid after 2 attempts") as raised:
        llm.classify(request)
    assert fake.count("POST", "/v1/messages") == 2  # the first try and one re-ask
    assert "classify answer still invalid after 2 attempts" in str(raised.value) and expected in str(raised.value)
    retried = fake.bodies("/v1/messages")[1]["messages"][0]["content"][-1]["text"]
    assert "Your previous answer was rejected" in retried  # the re-ask says what was wrong


def test_a_proxy_page_or_a_json_that_is_no_message_is_a_clear_error_and_asked_again(fake):
    # The response is read as raw JSON (not the SDK's typed Message): what the SDK refused must still be refused.
    llm = build_llm(settings_for(fake, llm_output_retries=1))
    request = ClassifyRequest(entry=entry(), candidates=candidates(SOP_A))
    fake.reply_next("/v1/messages", "<html>Gateway login</html>", headers={"Content-Type": "text/html"})
    fake.reply_next("/v1/messages", ["not", "a", "message"])
    with pytest.raises(ProviderError, match="after 2 attempts: response is not a Messages API message \\(list\\)"):
        llm.classify(request)
    retried = fake.bodies("/v1/messages")[1]["messages"][0]["content"][-1]["text"]
    assert "response body is not JSON" in retried  # the first answer's error, told to the re-ask


@pytest.mark.parametrize("odd", [{"usage": "lots"}, {"usage": [1, 2]}, {"usage": {"input_tokens": "12"}},
                                 {"usage": {"output_tokens": -5}}, {"usage": {"input_tokens": 10**30}},
                                 {"usage": {"input_tokens": 1.5}}, {"model": 42}, {"model": ["claude"]}])
def test_usage_or_model_that_is_not_what_the_meter_reads_is_a_clear_error(fake, odd):
    # Read raw, the JSON's usage and model reach usage_of and price_of as they are: an odd one is the proxy's
    # answer, asked again and told in one sentence, not an AttributeError (or a DB error when the calls are written).
    llm = build_llm(settings_for(fake, llm_output_retries=0))
    request = ClassifyRequest(entry=entry(), candidates=candidates(SOP_A))
    fake.reply_next("/v1/messages", _tool_message(_valid(request)) | odd)
    with pytest.raises(ProviderError, match="response (usage is not token counts|model is not a model id)"):
        llm.classify(request)


def test_usage_and_model_come_from_the_raw_response(fake):
    llm = build_llm(settings_for(fake))
    request = ClassifyRequest(entry=entry(), candidates=candidates(SOP_A))
    answer = _tool_message(_valid(request)) | {"model": "claude-opus-4-6-20260101", "usage": {
        "input_tokens": 11, "output_tokens": 7, "cache_creation_input_tokens": 5, "cache_read_input_tokens": None}}
    fake.reply_next("/v1/messages", answer)
    with costs.using(costs.Meter(Settings(_env_file=None).prices, run_id=None)) as meter:
        assert [d.action for d in llm.classify(request)] == [Action.redundant]
    (call,) = meter.calls
    assert call.model == "claude-opus-4-6-20260101" and call.cost_usd > 0  # a dated id is priced by its stem
    assert call.usage == costs.Usage(input_tokens=11, output_tokens=7, cache_write_tokens=5, cache_read_tokens=0)


def test_a_bad_answer_then_a_good_one_succeeds(fake):
    llm = build_llm(settings_for(fake))
    request = ClassifyRequest(entry=entry(), candidates=candidates(SOP_A))
    fake.reply_next("/v1/messages", BAD_ANSWERS["unknown action"][0])
    fake.reply_next("/v1/messages", _tool_message(_valid(request)))
    assert [d.action for d in llm.classify(request)] == [Action.redundant]


def test_decisions_must_cover_exactly_the_candidates(fake):
    llm = build_llm(settings_for(fake, llm_output_retries=0))
    request = ClassifyRequest(entry=entry(), candidates=candidates(SOP_A, SOP_B))
    only_one = {"decisions": _valid(request)["decisions"][:1]}
    fake.reply_next("/v1/messages", _tool_message(only_one))
    with pytest.raises(ProviderError, match="no decision for docs/sops/module-2/sop-2-3.md"):
        llm.classify(request)


# -- transport retries -----------------------------------------------------------------------


def test_429_with_retry_after_500_and_a_timeout_are_retried_then_succeed(fake, caplog):
    llm = build_llm(settings_for(fake, llm_timeout_seconds=0.5, llm_max_retries=4))
    request = ClassifyRequest(entry=entry(), candidates=candidates(SOP_A))
    fake.fail_next("/v1/messages", 429, headers={"retry-after": "1"})
    fake.fail_next("/v1/messages", 500)
    fake.delay_next("/v1/messages", 1.5)  # longer than the client timeout
    with caplog.at_level("WARNING", logger=retry.__name__):
        assert llm.classify(request)[0].action == Action.enrich
    assert fake.count("POST", "/v1/messages") == 4
    # What each retry waited for, as decided (and then slept): retry-after's 1 s, then backoff after
    # the 500 and after the client gave up on the stalled answer.
    waits = [r.getMessage() for r in caplog.records if r.name == retry.__name__]
    assert len(waits) == 3, waits
    assert "429 rate_limit_error" in waits[0] and waits[0].endswith("retry 1/4 in 1.00s")
    assert "500 api_error" in waits[1] and "retry 2/4 in " in waits[1]
    assert "request timed out; retry 3/4 in " in waits[2]


def test_529_overloaded_retries_stop_at_the_configured_limit(fake):
    llm = build_llm(settings_for(fake, llm_max_retries=2))
    fake.fail_next("/v1/messages", 529, count=10)
    with pytest.raises(retry.RetriesExhausted, match=r"failed after 3 attempts: 529 overloaded_error"):
        llm.classify(ClassifyRequest(entry=entry(), candidates=candidates(SOP_A)))
    assert fake.count("POST", "/v1/messages") == 3


def test_a_retry_after_beyond_the_longest_wait_is_not_slept(fake):
    llm = build_llm(settings_for(fake, llm_retry_max_seconds=5))
    fake.fail_next("/v1/messages", 429, headers={"retry-after": "600"})
    with pytest.raises(retry.RetriesExhausted, match="retry-after 600s exceeds PLAYBOOK_SYNC_LLM_RETRY_MAX_SECONDS"):
        llm.classify(ClassifyRequest(entry=entry(), candidates=candidates(SOP_A)))
    assert fake.count("POST", "/v1/messages") == 1


def test_401_is_not_retried_and_names_the_key_variable(fake):
    llm = build_llm(settings_for(fake, anthropic_api_key="sk-ant-api03-wrong-key-0123456789"))
    with pytest.raises(retry.AuthError) as raised:
        llm.classify(ClassifyRequest(entry=entry(), candidates=candidates(SOP_A)))
    assert fake.count("POST", "/v1/messages") == 1
    assert "PLAYBOOK_SYNC_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)" in str(raised.value)
    assert "wrong-key" not in str(raised.value)


def test_400_is_not_retried_and_names_the_settings(fake):
    llm = build_llm(settings_for(fake))
    fake.fail_next("/v1/messages", 400, body={"type": "error", "error": {"type": "invalid_request_error",
                                                                          "message": "model: not-a-model not found"}})
    with pytest.raises(retry.InvalidRequest, match="not-a-model not found.*PLAYBOOK_SYNC_MODEL_CLASSIFY"):
        llm.classify(ClassifyRequest(entry=entry(), candidates=candidates(SOP_A)))
    assert fake.count("POST", "/v1/messages") == 1


def test_a_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("PLAYBOOK_SYNC_ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(retry.AuthError, match=r"no Anthropic API key: set PLAYBOOK_SYNC_ANTHROPIC_API_KEY"):
        build_llm(Settings(_env_file=None, llm="anthropic"))


# -- edits, cluster names, new SOPs ------------------------------------------------------------


def test_one_edit_call_writes_every_block_of_an_sop(fake):
    llm = build_llm(settings_for(fake))
    doc = parse_sop("docs/sops/module-2/sop-2-1.md", SOP_A.encode())
    items = [(entry("Name the competitor in the subject line. It doubled opens."), "Step 1: Write the subject line"),
             (entry("Short subjects won on every test we ran.", transcript_type="sales"), "Step 1: Write the subject line"),
             (entry("Should we send on weekends?", category="question"), ""),
             (entry("The tracker now logs opens per segment.", category="product_intel"), "")]
    groups = group_for_blocks(doc, items)
    planned, meter = metered(lambda: plan_sop(llm, doc, groups))
    assert len(groups) == 3 and [c.step for c in meter.calls] == ["edit"]  # three blocks, one call
    assert [p.kind for p in planned] == [kind for _, kind in groups]
    assert planned[0].block.startswith(":::tip From the Field\nName the competitor in the subject line.")
    assert planned[1].block.startswith(":::warning Common Question\n") and planned[1].hint == "Common Mistakes"
    body = fake.bodies("/v1/messages")[0]
    assert body["tools"][0]["input_schema"] == EDIT.schema and body["tools"][0]["name"] == "write_callouts"
    sop, task = body["messages"][0]["content"]
    assert "Outline:\n- Why This Matters" in sop["text"] and "cache_control" not in sop  # read once: not cached
    assert [line for line in task["text"].splitlines() if line.startswith("Block ")] == ["Block b1", "Block b2", "Block b3"]


def test_edit_plan_anchor_outside_the_sop_is_retried_once_with_the_error(fake):
    calls = []

    def responder(name, schema, prompt):
        answer = answers.default_answer(name, schema, prompt)
        calls.append(prompt)
        if name == "write_callouts" and len(calls) == 1:
            answer["callouts"][0]["anchor"] = "## A heading this SOP does not have"
        return answer

    fake.responder = responder
    llm = build_llm(settings_for(fake))
    doc = parse_sop("docs/sops/module-2/sop-2-1.md", SOP_A.encode())
    items = [entry("Name the competitor in the subject line. It doubled opens."),
             entry("Short subjects won on every test we ran.", transcript_type="sales")]
    groups = group_for_blocks(doc, [(e, "Step 1: Write the subject line") for e in items]
                              + [(entry("Should we send on weekends?", category="question"), "")])
    planned, meter = metered(lambda: plan_sop(llm, doc, groups))
    assert len(calls) == 2 and "block b1: anchor" in calls[1] and "is not a line of docs/sops/module-2/sop-2-1.md" in calls[1]
    assert "Block b2" not in calls[1]  # only the block that missed is asked again
    assert planned[0].hint == "Step 1: Write the subject line"
    assert planned[0].block.startswith(":::tip From the Field\nName the competitor in the subject line.")
    assert [c.step for c in meter.calls] == ["edit", "edit"]


def test_edit_plan_whose_anchor_misses_twice_raises_for_deferral(fake):
    fake.responder = lambda n, s, p: {"callouts": [c | {"anchor": "invented line"}
                                                   for c in answers.default_answer(n, s, p)["callouts"]]}
    llm = build_llm(settings_for(fake))
    doc = parse_sop("docs/sops/module-2/sop-2-1.md", SOP_A.encode())
    planned = plan_sop(llm, doc, group_for_blocks(doc, [(entry("Should we send on weekends?", category="question"), "")]))
    assert isinstance(planned[0], AnchorError) and "asked twice" in str(planned[0])
    assert fake.count("POST", "/v1/messages") == 2


def test_cluster_names_use_the_cheaper_model_and_drafts_render(fake):
    llm = build_llm(settings_for(fake))
    group = [entry("Referral partners send warm leads every month.", tags=["referrals"]),
             entry("They want a referral fee of ten percent.", tags=["referrals"]),
             entry("Referral partners need a one-page brief.", tags=["referrals"])]
    label = llm.name_cluster(group)
    assert label == "Referral Practices" and fake.bodies("/v1/messages")[0]["model"] == "claude-sonnet-4-6"
    draft = llm.draft_sop(NewSopRequest(module="module-1", cluster_label=label, entries=group))
    assert draft.title == "Referral Practices" and draft.steps[0] == "Referral partners send warm leads every month."
    path, content = render_new_sop("module-1", 4, draft)
    assert path.startswith("docs/sops/module-1/sop-1-4-") and "## Key Lessons" in content
    assert fake.bodies("/v1/messages")[1]["model"] == "claude-opus-4-6"


def test_the_fake_caches_like_the_service_minimum_length_and_concurrent_writers():
    fake = FakeAnthropic(min_cache_tokens=100, latency=0.0)
    long, short = "x" * 800, "y" * 200  # 200 and 50 tokens
    params = lambda system, task: {"system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],  # noqa: E731
                                   "messages": [{"role": "user", "content": task}]}
    assert fake._usage(params(short, "a")) == {"input_tokens": 50, "cache_creation_input_tokens": 0,
                                               "cache_read_input_tokens": 0, "output_tokens": 0}  # below the minimum
    assert fake._usage(params(long, "a"))["cache_creation_input_tokens"] == 200
    assert fake._usage(params(long, "bbbb"))["cache_read_input_tokens"] == 200
    fake.latency = 60.0  # a request that arrived before the writer was answered does not see its entry
    assert fake._usage(params("z" * 800, "a"))["cache_creation_input_tokens"] == 200
    assert fake._usage(params("z" * 800, "a"))["cache_creation_input_tokens"] == 200
