"""The lifecycle every fake server shares: a ThreadingHTTPServer on a free 127.0.0.1 port."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class _Listener(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: when 32 SDK threads open their connections at once, the kernel
    # drops the SYNs past it and those clients retry a second later (seen as 1.3 s calls at 300 ms of latency
    # in bench/). A real API's listener takes such a burst; the fakes' latency stays what the bench sets.
    request_queue_size = 128


class LoopbackServer:
    """Serve `handler` (which reads the fake as `self.fake`) in a background thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._handler = handler
        self._server: _Listener | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT of the running server."""
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self):
        """Listen on a free port in a background thread."""
        handler = type("Handler", (self._handler,), {"fake": self})
        self._server = _Listener(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
