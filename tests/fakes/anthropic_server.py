"""A fake Anthropic API on 127.0.0.1: Messages (tool use, usage, prompt caching) and Message Batches.

Point the SDK at it with `anthropic.Anthropic(base_url=fake.base_url, api_key=fake.api_key)`.
Prompt caching is simulated as the service does it: the prefix (tools → system →
messages) up to each `cache_control` breakpoint is a cache key; the longest known one is
read, the rest up to the last breakpoint is written. As on the service, a prefix shorter
than the model's minimum (`min_cache_tokens`) is not cached at all (neither written nor
read, billed as plain input), and an entry becomes readable only once the request that
wrote it has been answered: concurrent requests that arrive before that each write it
again. Token counts are len(text) // 4.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.answers import Responder, default_answer
from tests.fakes.http_fake import Answer, FakeHTTPService

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                529: "overloaded_error"}


def tokens(text: str) -> int:
    """The fake's token count: a quarter of the characters."""
    return len(text) // 4


@dataclass
class _Batch:
    id: str
    requests: list[dict]
    created: datetime
    polls_left: int
    results: list[dict] | None = None
    overrides: dict[str, dict] = field(default_factory=dict)


class FakeAnthropic(FakeHTTPService):
    """Messages API + Message Batches with fault injection and a latency knob."""

    def __init__(self, api_key: str | None = "sk-ant-fake-key-000", *, latency: float = 0.0,
                 responder: Responder = default_answer, batch_polls: int = 1, min_cache_tokens: int = 1024) -> None:
        super().__init__(api_key=api_key, latency=latency)
        self.responder = responder
        self.batch_polls = batch_polls  # retrieves answered "in_progress" before a batch ends
        self.batches: dict[str, _Batch] = {}
        self.cache: dict[str, float] = {}  # prefix key → when it became readable (time.monotonic())
        self.min_cache_tokens = min_cache_tokens  # the service's minimum cacheable prompt (1,024 on Opus/Sonnet)
        self.usages: list[dict] = []  # usage of every message answered (direct and in batches)
        self.batch_overrides: dict[str, dict] = {}  # custom_id → result object, for errored results

    # -- FakeHTTPService ------------------------------------------------------------

    def authorized(self, headers: Mapping[str, str]) -> bool:
        lower = {k.lower(): v for k, v in headers.items()}
        # Older SDKs send x-api-key; the installed one sends the key as a bearer token.
        given = lower.get("x-api-key") or lower.get("authorization", "").removeprefix("Bearer ")
        return self.api_key is None or given == self.api_key

    def error_body(self, status: int, message: str) -> Any:
        return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}

    def route(self, method: str, path: str, query: str, body: Any) -> Answer:
        if method == "POST" and path == "/v1/messages":
            problem = self._invalid(body)
            return (400, self.error_body(400, problem), {}) if problem else (200, self.message(body), {})
        if method == "POST" and path == "/v1/messages/batches":
            return self._create_batch(body)
        if m := re.fullmatch(r"/v1/messages/batches/([\w-]+)/results", path):
            return self._results(m.group(1))
        if method == "GET" and (m := re.fullmatch(r"/v1/messages/batches/([\w-]+)", path)):
            return self._retrieve(m.group(1))
        return 404, self.error_body(404, f"no route {method} {path}"), {}

    # -- messages ------------------------------------------------------------------------

    @staticmethod
    def _invalid(params: Any) -> str | None:
        if not isinstance(params, dict):
            return "body must be a JSON object"
        for name in ("model", "max_tokens", "messages"):
            if name not in params:
                return f"{name}: Field required"
        marks = sum(1 for s in _segments(params) if s[1])
        return f"A maximum of 4 blocks with cache_control may be provided. Found {marks}." if marks > 4 else None

    def message(self, params: dict, *, direct: bool = True) -> dict:
        """Answer one Messages request (used directly and for each batch request)."""
        usage = self._usage(params, direct=direct)
        tools = {t["name"]: t for t in params.get("tools") or []}
        choice = params.get("tool_choice") or {}
        prompt = _prompt_text(params)
        if choice.get("type") == "tool" and choice.get("name") in tools:
            tool = tools[choice["name"]]
            answer = self.responder(tool["name"], tool.get("input_schema", {}), prompt)
            content = [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": tool["name"], "input": answer}]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": "ok"}], "end_turn"
        usage["output_tokens"] = max(1, tokens(json.dumps(content)))
        with self.lock:
            self.usages.append(dict(usage))
        return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": params["model"],
                "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}

    def _usage(self, params: dict, *, direct: bool = True) -> dict:
        segments = _segments(params)
        sizes = [tokens(text) for text, _ in segments]
        keys, running, total = [], hashlib.sha256(), 0
        for (text, marked), size in zip(segments, sizes, strict=True):
            running.update(text.encode())
            total += size
            keys.append(running.hexdigest() if marked and total >= self.min_cache_tokens else None)
        marks = [i for i, k in enumerate(keys) if k]
        now = time.monotonic()
        arrived = now - self.latency if direct else now  # answered after the latency; looked up on arrival
        with self.lock:
            hit = max((i for i in marks if self.cache.get(keys[i], now + 1) <= arrived), default=-1)
            last = marks[-1] if marks else -1
            for i in marks:
                self.cache.setdefault(keys[i], now)
        read = sum(sizes[: hit + 1])
        write = sum(sizes[hit + 1 : last + 1])
        return {"input_tokens": sum(sizes) - read - write, "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read, "output_tokens": 0}

    # -- batches ---------------------------------------------------------------------------

    def _create_batch(self, body: Any) -> Answer:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not requests:
            return 400, self.error_body(400, "requests: at least one request is required"), {}
        ids = [r.get("custom_id") for r in requests]
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) and re.fullmatch(r"[\w-]{1,64}", i) for i in ids):
            return 400, self.error_body(400, "custom_id values must be unique and match ^[a-zA-Z0-9_-]{1,64}$"), {}
        for r in requests:
            if problem := self._invalid(r.get("params")):
                return 400, self.error_body(400, f"requests[{r['custom_id']}].params: {problem}"), {}
        batch = _Batch(f"msgbatch_{uuid.uuid4().hex[:24]}", requests, datetime.now(UTC), self.batch_polls)
        with self.lock:
            self.batches[batch.id] = batch
        return 200, self._batch_json(batch, "in_progress"), {}

    def _retrieve(self, batch_id: str) -> Answer:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, self.error_body(404, f"batch {batch_id} not found"), {}
            if batch.polls_left > 0:
                batch.polls_left -= 1
                return 200, self._batch_json(batch, "in_progress"), {}
        self._finish(batch)
        return 200, self._batch_json(batch, "ended"), {}

    def _finish(self, batch: _Batch) -> None:
        if batch.results is not None:
            return
        results = []
        for r in batch.requests:
            override = self.batch_overrides.get(r["custom_id"])
            if override is not None:
                results.append({"custom_id": r["custom_id"], "result": override})
                continue
            message = self.message(r["params"], direct=False)
            message["usage"]["service_tier"] = "batch"
            results.append({"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": message}})
        batch.results = results[::-1]  # the service does not keep request order either

    def _results(self, batch_id: str) -> Answer:
        batch = self.batches.get(batch_id)
        if batch is None or batch.results is None:
            return 404, self.error_body(404, "results are available once the batch has ended"), {}
        lines = "".join(json.dumps(r) + "\n" for r in batch.results)
        return 200, lines.encode(), {"content-type": "application/binary"}

    def _batch_json(self, batch: _Batch, status: str) -> dict:
        ended = status == "ended"
        n = len(batch.requests)
        failed = sum(1 for r in batch.requests if r["custom_id"] in self.batch_overrides) if ended else 0
        return {
            "id": batch.id, "type": "message_batch", "processing_status": status,
            "request_counts": {"processing": 0 if ended else n, "succeeded": n - failed if ended else 0,
                               "errored": failed, "canceled": 0, "expired": 0},
            "created_at": batch.created.isoformat(), "expires_at": (batch.created + timedelta(hours=24)).isoformat(),
            "ended_at": datetime.now(UTC).isoformat() if ended else None, "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _blocks(value: Any) -> list[dict]:
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    return list(value or [])


def _segments(params: dict) -> list[tuple[str, bool]]:
    """Cache-relevant prompt pieces in service order (tools, system, messages) and their breakpoints."""
    out = [(json.dumps(t, sort_keys=True), bool(t.get("cache_control"))) for t in params.get("tools") or []]
    out += [(b.get("text", ""), bool(b.get("cache_control"))) for b in _blocks(params.get("system"))]
    for message in params.get("messages") or []:
        out += [(b.get("text", json.dumps(b, sort_keys=True)), bool(b.get("cache_control")))
                for b in _blocks(message.get("content"))]
    return out


def _prompt_text(params: dict) -> str:
    parts = [b.get("text", "") for b in _blocks(params.get("system"))]
    for message in params.get("messages") or []:
        parts += [b.get("text", "") for b in _blocks(message.get("content"))]
    return "\n\n".join(parts)
