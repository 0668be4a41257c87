"""The fakes' listener takes a burst of new connections the way a real API's does (bench/ opens 32 at once)."""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler

from tests.fakes.loopback import LoopbackServer


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.2)  # a model's latency: the connections pile up while the first ones are answered
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_forty_connections_opened_at_once_are_all_answered_without_a_syn_retry():
    # socketserver's backlog of 5 dropped the SYNs past it; those clients tried again a second later.
    took: list[float] = []
    go = threading.Barrier(40)

    def call(port: int) -> None:
        go.wait()
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()
        took.append(time.monotonic() - started)

    with LoopbackServer(_Slow) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        threads = [threading.Thread(target=call, args=(port,)) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(took) == 40 and max(took) < 0.9, sorted(took)[-5:]
