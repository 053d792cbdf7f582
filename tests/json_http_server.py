"""A real HTTP server on 127.0.0.1 that answers JSON POSTs through a test's own function.

The HTTP embedder's and the rerankers' tests speak to it over real sockets, so timeouts, status
codes and bodies are what a client meets in production; only the model behind it is the test's.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (path, headers, JSON body) -> (status, response text)
Answer = Callable[[str, dict[str, str], dict[str, Any]], tuple[int, str]]


@contextlib.contextmanager
def serve_json(answer: Answer, delay_seconds: Callable[[], float] = lambda: 0.0) -> Iterator[str]:
    """Serve `answer` until the block ends; yields the base URL. `delay_seconds` is read per
    request, so a test can slow the server down after starting it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            delay = delay_seconds()
            if delay:
                time.sleep(delay)
            status, text = answer(self.path, dict(self.headers), body)
            payload = text.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
