"""Issue 12, items 1 and 11: a web page (DNS rebinding, cross-origin requests) and a session flood
against `codebase-mcp serve --transport http`, driven with a real HTTP client.

Before: every request carrying `Host: evil.example:PORT` and `Origin: http://evil.example:PORT`
was served (a page could start indexing and read files back); 10,000 `initialize` calls made every
new client get 503 for 30 minutes; a one-character token was accepted on 0.0.0.0.
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
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from reliability.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

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
TOKEN = "t" * 40


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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment,
    )


@contextmanager
def _server(*args: str, env: dict[str, str] | None = None) -> Iterator[int]:
    port = _free_port()
    proc = _serve(*args, "--port", str(port), env=env)
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.communicate()[1].decode()[-2000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(listening, timeout=150, interval=0.2, what="the HTTP server to listen")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tool_call(name: str, arguments: dict[str, Any], session: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def test_a_rebinding_page_gets_421_and_a_foreign_origin_403(settings: Any, tmp_path: Any) -> None:
    with _server() as port:
        url = f"http://127.0.0.1:{port}/mcp"
        forged = httpx.post(
            url,
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
            timeout=10,
        )
        assert forged.status_code == 421, forged.text[:300]
        assert "CODEBASE_MCP_ALLOWED_HOSTS" in forged.text and "evil.example" in forged.text

        # A cross-origin page that reaches the right Host (no rebinding) is refused by its Origin.
        cross = httpx.post(
            url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://evil.example"}, timeout=10
        )
        assert cross.status_code == 403, cross.text[:300]
        assert "CODEBASE_MCP_ALLOWED_ORIGINS" in cross.text
        for origin in ("null", "file://", f"http://127.0.0.1.evil.example:{port}"):
            refused = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": origin}, timeout=10)
            assert refused.status_code == 403, (origin, refused.status_code)

        # A session opened legitimately cannot be driven by a rebinding page either.
        opened = httpx.post(url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
        assert opened.status_code == 200, opened.text[:300]
        session = opened.headers["mcp-session-id"]
        hijack = httpx.post(
            url,
            json=_tool_call("start_indexing_background", {"repo_path": str(tmp_path)}, session),
            headers={**MCP_HEADERS, "mcp-session-id": session, "Host": f"evil.example:{port}"},
            timeout=10,
        )
        assert hijack.status_code == 421

        # Loopback names and loopback origins work, with any port.
        for headers in (
            {"Host": f"localhost:{port}"},
            {"Host": f"[::1]:{port}"},
            {"Origin": f"http://localhost:{port}"},
            {"Origin": f"http://127.0.0.1:{port + 1}"},
        ):
            ok = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10)
            assert ok.status_code == 200, (headers, ok.status_code, ok.text[:200])
        # The probe endpoint answers whatever the Host (Kubernetes probes use the pod IP).
        probe = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Host": "10.1.2.3:8000"}, timeout=5)
        assert probe.status_code == 200


def test_an_allow_listed_host_and_origin_are_served(settings: Any) -> None:
    env = {
        "CODEBASE_MCP_ALLOWED_HOSTS": "mcp.internal, *.svc.cluster.local",
        "CODEBASE_MCP_ALLOWED_ORIGINS": "https://console.example.com",
    }
    with _server(env=env) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        for headers, expected in (
            ({"Host": f"mcp.internal:{port}"}, 200),
            ({"Host": "codebase.default.svc.cluster.local"}, 200),
            ({"Host": "mcp.internal.evil.example"}, 421),
            ({"Origin": "https://console.example.com"}, 200),
            ({"Origin": "https://console.example.com.evil.example"}, 403),
        ):
            response = httpx.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10)
            assert response.status_code == expected, (headers, response.status_code, response.text[:200])


def test_a_short_token_off_loopback_refuses_to_start(settings: Any) -> None:
    proc = _serve("--host", "0.0.0.0", "--port", str(_free_port()), env={"CODEBASE_MCP_AUTH_TOKEN": "x"})
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    message = stderr.decode()
    assert proc.returncode != 0
    assert "at least 32 bytes" in message and "CODEBASE_MCP_AUTH_TOKEN" in message
    assert "Traceback" not in message


def test_401_says_how_to_authenticate(settings: Any) -> None:
    with _server("--host", "0.0.0.0", env={"CODEBASE_MCP_AUTH_TOKEN": TOKEN}) as port:
        response = httpx.post(
            f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers=MCP_HEADERS, timeout=10
        )
        assert response.status_code == 401
        assert "Authorization: Bearer" in response.text and "CODEBASE_MCP_AUTH_TOKEN" in response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text


def test_a_session_flood_never_locks_a_new_client_out(settings: Any) -> None:
    env = {"CODEBASE_MCP_MAX_SESSIONS_PER_CLIENT": "4", "CODEBASE_MCP_SESSION_IDLE_SECONDS": "3"}
    with _server(env=env) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        flood = []
        with httpx.Client(timeout=10) as http:
            for _ in range(300):
                response = http.post(url, json=INITIALIZE, headers=MCP_HEADERS)
                assert response.status_code == 200, response.text[:200]
                flood.append(response.headers["mcp-session-id"])

            def alive(session: str) -> bool:
                ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
                answer = http.post(url, json=ping, headers={**MCP_HEADERS, "mcp-session-id": session})
                assert answer.status_code in (200, 202, 404), answer.status_code
                return answer.status_code != 404

            # The flooder keeps only its newest sessions; the oldest were closed.
            assert not alive(flood[0]) and not alive(flood[100])
            assert alive(flood[-1])

        async def use() -> set[str]:
            async with Client(StreamableHttpTransport(url)) as client:
                return {t.name for t in await client.list_tools()}

        assert "search_code" in anyio.run(use)

        # Idle expiry: a session unused for longer than CODEBASE_MCP_SESSION_IDLE_SECONDS is closed.
        with httpx.Client(timeout=10) as http:
            session = http.post(url, json=INITIALIZE, headers=MCP_HEADERS).headers["mcp-session-id"]
            time.sleep(4.5)  # the condition under test is the passing of idle time itself
            ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
            expired = http.post(url, json=ping, headers={**MCP_HEADERS, "mcp-session-id": session})
            assert expired.status_code == 404
