"""A real local HTTP server speaking Ollama's /api/embed, with a controllable delay.

Tests point EMBEDDING_URL at it to slow indexing down on purpose (timeouts, cancels, the
concurrency limit) without any test hook in the product code. Vectors are deterministic
bag-of-words hashes, so identical texts embed identically.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DIMENSION = 32


def fake_vector(text: str) -> list[float]:
    vector = np.zeros(DIMENSION, dtype=np.float64)
    for word in text.lower().split():
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "little") % DIMENSION] += 1.0
    norm = float(np.linalg.norm(vector)) or 1.0
    return [float(x) / norm for x in vector]


class FakeEmbeddingServer:
    def __init__(self) -> None:
        self.delay_seconds = 0.0
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    deadline = time.monotonic() + server.delay_seconds
                    while time.monotonic() < deadline:
                        time.sleep(0.05)
                    inputs = payload.get("input", [])
                    if isinstance(inputs, str):
                        inputs = [inputs]
                    body = json.dumps({"embeddings": [fake_vector(t) for t in inputs]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeEmbeddingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
