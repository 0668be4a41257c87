"""A fake OpenAI API on 127.0.0.1: Embeddings (with the real limits) and Chat Completions (JSON schema).

Point the SDK at `fake.api_url` (…/v1). Embeddings enforce what the service enforces —
at most 2,048 inputs, 8,192 tokens per input and 300,000 tokens per request, counted
with tiktoken — and return the offline lexical vectors at the requested `dimensions`,
float or base64. Chat Completions answer a strict `json_schema` response format through
the fake model in answers.py; a repeated system prompt is reported as cached tokens.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from playbook_sync.providers.offline import OfflineEmbedder
from playbook_sync.providers.openai import encoding
from tests.fakes.answers import Responder, default_answer
from tests.fakes.http_fake import Answer, FakeHTTPService

MAX_INPUTS, MAX_INPUT_TOKENS, MAX_REQUEST_TOKENS = 2048, 8192, 300_000
_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                429: "rate_limit_exceeded", 500: "server_error"}


class FakeOpenAI(FakeHTTPService):
    """Embeddings + Chat Completions with fault injection and a latency knob."""

    def __init__(self, api_key: str | None = "sk-fake-openai-key-000", *, latency: float = 0.0,
                 responder: Responder = default_answer, default_dimensions: int = 1536) -> None:
        super().__init__(api_key=api_key, latency=latency)
        self.responder = responder
        self.default_dimensions = default_dimensions
        self.embedding_requests: list[dict] = []  # per request: model, inputs, tokens, dimensions
        self.seen_systems: set[str] = set()
        self._tokenizer = encoding("text-embedding-3-small")

    @property
    def api_url(self) -> str:
        """The base_url for the OpenAI SDK (it appends /embeddings, /chat/completions)."""
        return f"{self.base_url}/v1"

    def authorized(self, headers: Mapping[str, str]) -> bool:
        given = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        return self.api_key is None or given == f"Bearer {self.api_key}"

    def error_body(self, status: int, message: str) -> Any:
        # The service echoes a masked key on 401s; so does the fake, to prove we scrub it.
        if status == 401:
            message = "Incorrect API key provided: sk-proj-****abcd. You can find your API key at your account page."
        return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"), "param": None,
                          "code": "invalid_api_key" if status == 401 else None}}

    def route(self, method: str, path: str, query: str, body: Any) -> Answer:
        if method == "POST" and path == "/v1/embeddings":
            return self._embeddings(body)
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(body)
        return 404, self.error_body(404, f"no route {method} {path}"), {}

    def _embeddings(self, body: dict) -> Answer:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
            return 400, self.error_body(400, "'input' must be a non-empty string or array of non-empty strings"), {}
        if len(inputs) > MAX_INPUTS:
            return 400, self.error_body(400, f"'input' must have at most {MAX_INPUTS} items, got {len(inputs)}"), {}
        counts = [len(self._tokenizer.encode_ordinary(t)) for t in inputs]
        if max(counts) > MAX_INPUT_TOKENS:
            return 400, self.error_body(400, f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, "
                                             f"however you requested {max(counts)} tokens"), {}
        if sum(counts) > MAX_REQUEST_TOKENS:
            return 400, self.error_body(400, f"Requested {sum(counts)} tokens, max {MAX_REQUEST_TOKENS} tokens per "
                                             "request"), {}
        dims = int(body.get("dimensions") or self.default_dimensions)
        vectors = OfflineEmbedder(dimensions=dims, max_batch=len(inputs)).embed(inputs)
        with self.lock:
            self.embedding_requests.append({"model": body.get("model"), "inputs": len(inputs), "tokens": sum(counts),
                                            "dimensions": body.get("dimensions")})
        as_b64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() if as_b64 else v}
                for i, v in enumerate(vectors)]
        return 200, {"object": "list", "data": data, "model": body.get("model"),
                     "usage": {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}}, {}

    def _chat(self, body: dict) -> Answer:
        messages = body.get("messages") or []
        fmt = (body.get("response_format") or {}).get("json_schema") or {}
        texts = [m.get("content") if isinstance(m.get("content"), str) else "" for m in messages]
        system = next((t for m, t in zip(messages, texts, strict=True) if m.get("role") in ("system", "developer")), "")
        prompt_tokens = sum(len(t) // 4 for t in texts)
        with self.lock:
            cached = len(system) // 4 if system in self.seen_systems else 0
            self.seen_systems.add(system)
        if fmt:
            answer = self.responder(fmt.get("name", ""), fmt.get("schema", {}), "\n\n".join(texts))
            content = answer if isinstance(answer, str) else json.dumps(answer)
        else:
            content = "ok"
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:20]}", "object": "chat.completion", "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(content) // 4),
                      "total_tokens": prompt_tokens + max(1, len(content) // 4),
                      "prompt_tokens_details": {"cached_tokens": cached}},
        }, {}
