"""Anthropic provider: strict tool use, prompt caching, usage metering, Message Batches.

Prompt layout, stable first: tool definition (static) → system rubric [cache_control] →
each candidate SOP's outline and best-matching sections → the entry. Only the tool and
system prefix is marked: it is the same for every call of a step, so it is written once and
read by every later call. SOP excerpts are not: they are chosen per entry (and an edit call
per SOP is made once), so a breakpoint there would pay cache writes (1.25x the input price)
that no later call reads (issue 12). The exception is a best candidate short enough to be
sent whole: that block is the same for every entry it is best for, and those entries share
the prefix up to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import anthropic

from playbook_sync import costs
from playbook_sync.providers import retry
from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.builder_steps import BuilderSteps
from playbook_sync.providers.structured import (
    CLASSIFY,
    InvalidAnswer,
    PromptParts,
    Step,
    StructuredLLM,
    classify_parts,
    parse_classification,
)
from playbook_sync.schemas import ClassifyRequest, Decision

KEY_ENV = "PLAYBOOK_SYNC_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)"
DEFAULT_MODELS = {"classify": "claude-opus-4-6", "edit": "claude-opus-4-6", "new_sop": "claude-opus-4-6",
                  "cluster": "claude-sonnet-4-6"}
_EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # per request, across system and messages


def api_key(settings) -> str:
    """The configured key, or a ProviderError naming the variable to set."""
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value().strip():
        raise retry.AuthError(f"no Anthropic API key: set {KEY_ENV}")
    return settings.anthropic_api_key.get_secret_value().strip()


# A response's token counts, in costs.Usage's order: input (uncached), output, cache write, cache read.
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def usage_of(message: Mapping) -> costs.Usage:
    """Input (uncached), output, cache-write and cache-read tokens of one response (its JSON)."""
    u = message.get("usage") or {}
    return costs.Usage(*(u.get(f) or 0 for f in USAGE_FIELDS))


def tool_input(message: Mapping, tool: str) -> object:
    """The input of the forced tool call (in a response's JSON), or InvalidAnswer when there is none."""
    content = message.get("content")
    blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
    for block in blocks:
        if block.get("type") == "tool_use" and block.get("name") == tool:
            return block.get("input")
    kinds = ", ".join(str(b.get("type", "?")) for b in blocks) or "nothing"
    raise InvalidAnswer(f"response has no {tool!r} tool call (stop_reason {message.get('stop_reason')}; got {kinds})")


def message_json(body: bytes) -> dict:
    """A Messages API response body as plain JSON, or InvalidAnswer when it is not one.

    Read raw rather than through the SDK's typed Message: building that pydantic tree was a
    measurable share of a worker's CPU per entry (issue 12), and we read four fields of it.
    """
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:  # a proxy's page with status 200
        raise InvalidAnswer(f"response body is not JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(message, dict) or message.get("type", "message") != "message":
        kind = message.get("type") if isinstance(message, dict) else type(message).__name__
        raise InvalidAnswer(f"response is not a Messages API message ({kind})")
    # The two fields the meter reads: checked here, or a proxy's odd JSON ends the entry in an AttributeError
    # from usage_of or price_of (and an out-of-range count in the database's error when the calls are written).
    usage, model = message.get("usage"), message.get("model")
    if usage is not None and not (isinstance(usage, Mapping) and all(_count(usage.get(f)) for f in USAGE_FIELDS)):
        raise InvalidAnswer(f"response usage is not token counts ({str(usage)[:80]})")
    if model is not None and not isinstance(model, str):
        raise InvalidAnswer(f"response model is not a model id ({str(model)[:80]})")
    return message



def _count(value: object) -> bool:
    """A token count as cp_llm_calls stores it (an integer column), or absent."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31)


@dataclass
class BatchResult:
    """One entry's outcome in an ended Message Batch."""

    custom_id: str
    decisions: list[Decision] | None
    error: str | None
    usage: costs.Usage | None
    model: str


class AnthropicLLM(BuilderSteps, StructuredLLM):
    """The LLM protocol on the Messages API (and the batch hooks batch.py uses)."""

    provider = "anthropic"
    default_models = DEFAULT_MODELS

    def __init__(self, settings, *, client: anthropic.Anthropic | None = None) -> None:
        super().__init__(settings)
        key = api_key(settings)
        # max_retries=0: ours (retry.py) are the only retries, so the limit is the one configured.
        self.client = client or anthropic.Anthropic(api_key=key, base_url=settings.anthropic_base_url,
                                                    timeout=settings.llm_timeout_seconds, max_retries=0)
        self.service = retry.Service("Anthropic", KEY_ENV, (key,))
        self.policy = retry.RetryPolicy.from_settings(settings)

    @classmethod
    def from_settings(cls, settings) -> AnthropicLLM:
        """Build from settings (also the `module:Class` hook)."""
        return cls(settings)

    def params(self, step: Step, parts: PromptParts, model: str) -> dict:
        """Messages API parameters: forced strict tool, cache breakpoints on the stable parts."""
        content = [{"type": "text", "text": block, **({"cache_control": _EPHEMERAL} if i == 0 and parts.cache_first else {})}
                   for i, block in enumerate(parts.blocks)]
        content.append({"type": "text", "text": parts.task})
        return {
            "model": model,
            "max_tokens": self.max_tokens,
            "system": [{"type": "text", "text": parts.system, "cache_control": _EPHEMERAL}],
            "messages": [{"role": "user", "content": content}],
            "tools": [{"name": step.tool, "description": step.description, "input_schema": dict(step.schema),
                       "strict": True}],
            "tool_choice": {"type": "tool", "name": step.tool},
        }

    def _request(self, step: Step, parts: PromptParts, model: str) -> object:
        params = self.params(step, parts, model)
        hint = f"PLAYBOOK_SYNC_MODEL_{step.name.upper()}, PLAYBOOK_SYNC_LLM_MAX_TOKENS"
        # with_raw_response: the SDK still raises on error statuses (retry.py classifies them); the body is ours.
        raw = retry.call(lambda: self.client.messages.with_raw_response.create(**params), service=self.service,
                         policy=self.policy, what=f"{step.name} call", settings_hint=hint)
        message = message_json(raw.read())
        costs.report(step.name, self.provider, message.get("model") or model, usage_of(message))
        return tool_input(message, step.tool)

    # -- Message Batches (used by playbook_sync.batch) -----------------------------------

    def submit_classifications(self, requests: Mapping[str, ClassifyRequest]) -> str:
        """Submit one Message Batch of classify calls keyed by custom id; return the batch id."""
        prompt, model = self.prompts[CLASSIFY.prompt], self.models[CLASSIFY.name]
        payload = [{"custom_id": cid, "params": self.params(CLASSIFY, classify_parts(prompt, r), model)}
                   for cid, r in requests.items()]
        batch = retry.call(lambda: self.client.messages.batches.create(requests=payload), service=self.service,
                           policy=self.policy, what="batch submission")
        return batch.id

    def batch_status(self, batch_id: str) -> str:
        """in_progress | canceling | ended."""
        batch = retry.call(lambda: self.client.messages.batches.retrieve(batch_id), service=self.service,
                           policy=self.policy, what="batch poll")
        return batch.processing_status

    def classification_results(self, batch_id: str, requests: Mapping[str, ClassifyRequest]) -> Iterator[BatchResult]:
        """Every result of an ended batch, parsed; a failed or invalid one carries its error."""
        results = retry.call(lambda: list(self.client.messages.batches.results(batch_id)), service=self.service,
                             policy=self.policy, what="batch results")
        model = self.models[CLASSIFY.name]
        for item in results:
            request = requests.get(item.custom_id)
            if request is None:
                continue  # not ours (or already applied): results map back by custom id only
            result = item.result
            if result.type != "succeeded":
                detail = getattr(getattr(getattr(result, "error", None), "error", None), "message", None)
                yield BatchResult(item.custom_id, None, f"batch request {result.type}" + (f": {detail}" if detail else ""),
                                  None, model)
                continue
            message = result.message.to_dict()  # the typed batch result as the JSON _request reads
            try:
                decisions = parse_classification(tool_input(message, CLASSIFY.tool), request)
                yield BatchResult(item.custom_id, decisions, None, usage_of(message), message.get("model") or model)
            except (InvalidAnswer, ProviderError) as exc:
                yield BatchResult(item.custom_id, None, f"invalid batch answer: {exc}", usage_of(message),
                                  message.get("model") or model)
