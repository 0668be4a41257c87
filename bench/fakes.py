"""The fake OpenAI and Anthropic servers (tests/fakes) on 127.0.0.1, with the bench's latency and counters."""

from __future__ import annotations

from dataclasses import dataclass

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI

# The fakes' vectors are the offline lexical embedder's, under the real model's name, so
# the bands are the ones read off that embedder's score histogram (config.DEFAULT_BANDS).
BANDS = '{"text-embedding-3-small": {"strong": 0.35, "weak": 0.20}}'


@dataclass
class Counts:
    """What the fakes served since the last reset."""

    messages: int
    embedding_requests: int
    embedding_inputs: int


class Fakes:
    """Both fake services, started once per bench and reset before every measured run."""

    def __init__(self) -> None:
        self.openai = FakeOpenAI().start()
        self.anthropic = FakeAnthropic().start()
        for fake in (self.openai, self.anthropic):
            # The fakes write headers and body separately; with Nagle's algorithm on, each answer
            # then waits ~40 ms for the client's delayed ACK, a stall real APIs do not have.
            fake._server.RequestHandlerClass.disable_nagle_algorithm = True

    def stop(self) -> None:
        """Stop both servers."""
        self.openai.stop()
        self.anthropic.stop()

    def reset(self, *, message_latency: float, embedding_latency: float) -> None:
        """Set latencies; forget recorded requests and the prompt cache (each run starts cold)."""
        for fake in (self.openai, self.anthropic):
            with fake.lock:
                fake.requests.clear()
        with self.anthropic.lock:
            self.anthropic.cache.clear()
            self.anthropic.usages.clear()
        with self.openai.lock:
            self.openai.embedding_requests.clear()
            self.openai.seen_systems.clear()
        self.anthropic.latency = message_latency
        self.openai.latency = embedding_latency

    def counts(self) -> Counts:
        """Requests served since the last reset."""
        with self.openai.lock:
            embeds = list(self.openai.embedding_requests)
        return Counts(messages=self.anthropic.count("POST", "/v1/messages") + self.openai.count("POST", "/chat/completions"),
                      embedding_requests=len(embeds), embedding_inputs=sum(r["inputs"] for r in embeds))

    def env(self) -> dict[str, str]:
        """Settings (as environment) that point the real providers at the fakes."""
        return {
            "PLAYBOOK_SYNC_EMBEDDER": "openai",
            "PLAYBOOK_SYNC_LLM": "anthropic",
            "PLAYBOOK_SYNC_EMBEDDING_MODEL": "text-embedding-3-small",
            "PLAYBOOK_SYNC_OPENAI_API_KEY": self.openai.api_key,
            "PLAYBOOK_SYNC_OPENAI_BASE_URL": self.openai.api_url,
            "PLAYBOOK_SYNC_ANTHROPIC_API_KEY": self.anthropic.api_key,
            "PLAYBOOK_SYNC_ANTHROPIC_BASE_URL": self.anthropic.base_url,
            "PLAYBOOK_SYNC_BANDS": BANDS,
        }
