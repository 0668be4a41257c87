"""Requests no route can serve, refused before one reads them: bodies above a limit (413, declared length
or streamed) and a NUL character in the path or query (422)."""

from __future__ import annotations

import json


class BodySizeLimit:
    """Pure ASGI middleware: counts the bytes a request body actually carries, not only its header.

    A Content-Length above the limit is refused at once; a chunked body is cut off as soon as
    it passes the limit, so a client cannot make the server buffer an unbounded body.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, 413, self.message)
            return
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, self.message)

    @property
    def message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes (PLAYBOOK_SYNC_API_MAX_BODY_BYTES)"


class NulRefused:
    """Pure ASGI middleware: a NUL (%00) in the path or query is a 422 sentence. No id, name or search holds
    one, and PostgreSQL refuses it in a query parameter with an error that would reach the client as a 500."""

    MESSAGE = "the request's path or query contains a NUL character (%00); no id, name or search can hold one"

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]
                                        or b"\x00" in scope["query_string"]):
            await _refuse(send, 422, self.MESSAGE)
            return
        await self.app(scope, receive, send)


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
