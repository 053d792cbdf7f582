"""Security 12: the streamable HTTP transport.

It binds 127.0.0.1 unless told otherwise, refuses any other address without a token, and with
CODEBASE_MCP_AUTH_TOKEN set answers 401 to a request without the right bearer token.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import psutil
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from reliability.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

TOKEN = "tok-" + "7f3a9c" * 6
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if k != "CODEBASE_MCP_AUTH_TOKEN"}
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "mcp_server.frontends.cli", "serve", "--transport", "http", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )


@contextmanager
def _running(*args: str, port: int, env: dict[str, str] | None = None) -> Iterator[psutil.Process]:
    proc = _serve(*args, "--port", str(port), env=env)
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.communicate()[1].decode()[-2000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(listening, timeout=45, interval=0.2, what="the HTTP server to listen")
        yield psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening_addresses(proc: psutil.Process, port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in proc.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def test_http_binds_loopback_by_default(settings: Any) -> None:
    port = _free_port()
    with _running(port=port) as server:
        assert _listening_addresses(server, port) == {"127.0.0.1"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_http_on_another_address_without_a_token_refuses_to_start(settings: Any, host: str) -> None:
    began = time.monotonic()
    proc = _serve("--host", host, "--port", str(_free_port()))
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    message = stderr.decode()
    assert proc.returncode != 0
    assert "refusing to serve HTTP" in message and "CODEBASE_MCP_AUTH_TOKEN" in message
    assert "Traceback" not in message
    print(
        f"\nsecurity 12: --host {host} refused in {time.monotonic() - began:.1f} s: "
        f"{' '.join(message.split())[-160:]}"
    )


def test_the_environment_cannot_open_it_either(settings: Any) -> None:
    proc = _serve("--port", str(_free_port()), env={"CODEBASE_MCP_HTTP_HOST": "0.0.0.0"})
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "refusing to serve HTTP on 0.0.0.0" in stderr.decode()


def test_with_a_token_only_requests_carrying_it_are_served(settings: Any) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with _running("--host", "0.0.0.0", port=port, env={"CODEBASE_MCP_AUTH_TOKEN": TOKEN}) as server:
        assert _listening_addresses(server, port) == {"0.0.0.0"}
        refused = [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Bearer"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
        ]
        for headers in refused:
            response = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10)
            assert response.status_code == 401, (headers, response.status_code, response.text[:200])
            assert TOKEN not in response.text
        # The probe endpoint reports only liveness, without a token.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok\n"
        ok = httpx.post(
            url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert ok.status_code == 200, ok.text[:300]

        async def use() -> dict[str, Any]:
            transport = StreamableHttpTransport(url, headers={"Authorization": f"Bearer {TOKEN}"})
            async with Client(transport) as client:
                tools = {t.name for t in await client.list_tools()}
                assert "search_code" in tools
                listed = await client.call_tool("list_indexing_jobs", {})
                data: dict[str, Any] = listed.structured_content or {}
                return data

        assert anyio.run(use) == {"jobs": [], "count": 0}
