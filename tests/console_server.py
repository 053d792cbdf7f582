"""A real `codebase-mcp serve --transport http` for the console and metrics tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

TOKEN = "console-" + "5e1f2a" * 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def http_server(env: dict[str, str] | None = None, *, token: str | None = TOKEN) -> Iterator[str]:
    """Yields the base URL of a server with the current environment (plus `env`)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "CODEBASE_MCP_AUTH_TOKEN"}
    environment.update(env or {})
    if token:
        environment["CODEBASE_MCP_AUTH_TOKEN"] = token
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcp_server.frontends.cli",
            "serve",
            "--transport",
            "http",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a loaded 2-core CI machine takes a minute
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.communicate()[1].decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the HTTP server did not come up")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
