"""Real-looking keys in the environment never reach logs, exceptions, prompts or output."""

from __future__ import annotations

import logging
import uuid

import pytest

from playbook_sync import costs
from playbook_sync.config import Settings
from playbook_sync.deps import build_embedder, build_llm
from playbook_sync.providers.base import ProviderError
from playbook_sync.schemas import Candidate, ClassifyRequest, Entry
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.unit

ANTHROPIC_KEY = "sk-ant-api03-" + "Q7vN2pXw9LmK4sTz8RbY1cHd6FgJ3eUo5iAq0WnVxZk" * 2 + "-AbCdEfAA"
OPENAI_KEY = "sk-proj-" + "Hf83JdKq92LmNz0PxWv5TsRb7YcUe4GiOa1" * 4


def test_keys_from_the_environment_never_leak(monkeypatch, caplog, capsys):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    caplog.set_level(logging.DEBUG)  # the SDKs' and httpx's debug logs included
    request = ClassifyRequest(
        entry=Entry(id=uuid.uuid4(), category="insight", content="Lead with the outcome. It works.",
                    transcript_type="coaching"),
        candidates=[Candidate(sop_path="docs/a.md", title="A", section="Steps", similarity=0.8, band="strong",
                              sop_text="---\nid: a\ntitle: A\n---\n\n## Steps\n\nDo it.\n")])
    errors: list[str] = []
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as anthropic_fake, FakeOpenAI(api_key=OPENAI_KEY) as openai_fake:
        settings = Settings(_env_file=None, llm="auto", embedder="auto", anthropic_base_url=anthropic_fake.base_url,
                            openai_base_url=openai_fake.api_url, embedding_dimensions=64, llm_retry_base_seconds=0.01,
                            llm_output_retries=0)
        assert settings.anthropic_api_key.get_secret_value() == ANTHROPIC_KEY  # read from the conventional variable
        llm, embedder = build_llm(settings), build_embedder(settings)  # "auto" picks the keyed providers
        assert type(llm).__name__ == "AnthropicLLM" and type(embedder).__name__ == "OpenAIEmbedder"
        meter = costs.Meter(settings.prices, run_id=None)
        with costs.using(meter):
            anthropic_fake.fail_next("/v1/messages", 500)  # a logged retry
            llm.classify(request)
            embedder.embed(["Lead with the outcome."])
            anthropic_fake.reply_next("/v1/messages", {"type": "message", "content": [], "model": "m", "role": "assistant",
                                                       "id": "x", "stop_reason": "end_turn", "usage": {
                                                           "input_tokens": 1, "output_tokens": 1}})
            openai_fake.fail_next("/v1/embeddings", 400)
            for failing, says in ((lambda: llm.classify(request), "classify answer still invalid"),  # no tool call
                                  (lambda: embedder.embed(["x"]), "OpenAI refused")):  # a 400
                with pytest.raises(ProviderError, match=says) as raised:
                    failing()
                errors.append(f"{raised.value!r} {raised.value}")
        # keys the services refuse: the error names the variable, never the key (nor the echo of it)
        anthropic_fake.api_key, openai_fake.api_key = "another-key", "another-key"
        for call, variable in ((lambda: llm.classify(request), "PLAYBOOK_SYNC_ANTHROPIC_API_KEY"),
                               (lambda: embedder.embed(["x"]), "PLAYBOOK_SYNC_OPENAI_API_KEY")):
            with pytest.raises(ProviderError, match=f"rejected the API key .*set a valid key in {variable}") as raised:
                call()
            errors.append(f"{raised.value!r} {raised.value}")
        prompts_sent = [r.raw.decode() for r in anthropic_fake.requests + openai_fake.requests]
    out = capsys.readouterr()
    assert any("API_KEY" in e for e in errors)
    haystacks = {"logs": caplog.text, "stdout": out.out, "stderr": out.err, "errors": "\n".join(errors),
                 "prompts": "\n".join(prompts_sent), "settings": repr(settings)}
    for name, text in haystacks.items():
        for key in (ANTHROPIC_KEY, OPENAI_KEY):
            assert key not in text and key[:24] not in text and key[-16:] not in text, f"key material in {name}"
    assert "sk-proj-****" not in haystacks["errors"]
