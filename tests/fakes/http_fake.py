"""A small JSON HTTP service on 127.0.0.1 for fake provider APIs: recording, faults, latency.

Subclasses implement `authorized`, `error_body` and `route`. Knobs for tests and benchmarks:
`latency` (seconds added to every request, a constructor argument), `fail_next` (answer
with an error status, optionally with headers such as retry-after), `delay_next` (stall a
request, to trip client timeouts) and `reply_next` (answer with a scripted body, e.g. a
malformed one). Only the bookkeeping holds the lock, so concurrent clients are served
concurrently, as by the real services.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.loopback import LoopbackServer

Answer = tuple[int, Any, dict[str, str]]  # status, body (JSON-able, str or bytes), headers


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class _Script:
    needle: str
    method: str | None
    count: int
    status: int | None = None  # None: answer normally (after the delay)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeHTTPService(LoopbackServer):
    """Base of the fake Anthropic and OpenAI servers."""

    def __init__(self, *, api_key: str | None, latency: float = 0.0) -> None:
        super().__init__(_Handler)
        self.api_key = api_key
        self.latency = latency
        self.requests: list[Recorded] = []
        self._scripts: list[_Script] = []
        self.lock = threading.RLock()
        self.in_flight = self.max_in_flight = 0  # requests being answered now / most at once so far

    # -- knobs -----------------------------------------------------------------------

    def fail_next(self, needle: str, status: int = 500, count: int = 1, *, headers: Mapping[str, str] | None = None,
                  body: Any = None, method: str | None = None) -> None:
        """Answer the next `count` requests whose path contains needle with an error status."""
        with self.lock:
            self._scripts.append(_Script(needle, method, count, status, body, dict(headers or {})))

    def delay_next(self, needle: str, seconds: float, count: int = 1, *, method: str | None = None) -> None:
        """Stall the next `count` matching requests for `seconds`, then answer normally."""
        with self.lock:
            self._scripts.append(_Script(needle, method, count, None, None, {}, seconds))

    def reply_next(self, needle: str, body: Any, count: int = 1, *, status: int = 200,
                   headers: Mapping[str, str] | None = None, method: str | None = None) -> None:
        """Answer the next `count` matching requests with this exact body (JSON-able, str or bytes)."""
        with self.lock:
            self._scripts.append(_Script(needle, method, count, status, body if body is not None else "", dict(headers or {})))

    def count(self, method: str, needle: str) -> int:
        """How many requests so far matched method and a path substring."""
        with self.lock:
            return sum(1 for r in self.requests if r.method == method and needle in r.path)

    def posts(self, path: str) -> list[Any]:
        """The JSON bodies of the POSTs to exactly this path, in order."""
        with self.lock:
            return [r.body for r in self.requests if r.method == "POST" and r.path == path]

    def bodies(self, needle: str) -> list[Any]:
        """The JSON bodies of the requests whose path contains needle, in order."""
        with self.lock:
            return [r.body for r in self.requests if needle in r.path]

    # -- for subclasses ----------------------------------------------------------------

    def authorized(self, headers: Mapping[str, str]) -> bool:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def route(self, method: str, path: str, query: str, body: Any) -> Answer:
        raise NotImplementedError

    # -- dispatch ----------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        """Record, apply scripts and auth, then route; counted in flight until answered."""
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._handle(method, raw_path, headers, raw)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle(self, method: str, raw_path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        url = urlsplit(raw_path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self.lock:
            self.requests.append(Recorded(method, url.path, {k.lower(): v for k, v in headers.items()}, body, raw))
            script = next((s for s in self._scripts if s.needle in url.path and s.method in (None, method)), None)
            if script is not None:
                script.count -= 1
                if script.count <= 0:
                    self._scripts.remove(script)
        if self.latency:
            time.sleep(self.latency)
        if script is not None and script.delay:
            time.sleep(script.delay)
        if script is not None and script.status is not None:
            if script.status >= 400 and script.body is None:
                return script.status, self.error_body(script.status, f"injected {script.status}"), script.headers
            return script.status, script.body, script.headers
        if not self.authorized(headers):
            return 401, self.error_body(401, "invalid authentication credentials"), {}
        if body is None and raw:
            return 400, self.error_body(400, "request body is not valid JSON"), {}
        return self.route(method, url.path, url.query, body)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHTTPService
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            status, body, headers = self.fake.handle(self.command, self.path, dict(self.headers.items()), raw)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: answer 500 so the test sees it
            status, body, headers = 500, {"error": {"type": "fake_bug", "message": repr(exc)}}, {}
        if isinstance(body, bytes):
            data, kind = body, headers.pop("content-type", "application/octet-stream")
        elif isinstance(body, str):
            data, kind = body.encode("utf-8"), headers.pop("content-type", "application/json")
        else:
            data, kind = json.dumps(body).encode("utf-8"), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
