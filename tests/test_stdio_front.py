"""`codebase-mcp serve` over stdio answers `initialize` from FastMCP's last answer while it loads
(frontends/stdio_front.py): raw JSON-RPC against the real executable's module, so what the client
receives, message by message, is checked, not inferred from timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from mcp_server.frontends import quick, stdio_front

pytestmark = pytest.mark.timeout(120)

PROTOCOL = "2025-06-18"


def _message(**fields: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode() + b"\n"


def _initialize(protocol: str = PROTOCOL) -> bytes:
    params = {"protocolVersion": protocol, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    return _message(id=1, method="initialize", params=params)


def _conversation(env: dict[str, str], protocol: str = PROTOCOL) -> list[dict[str, Any]]:
    """Every message the server sends for: initialize, initialized, tools/list, then end of input."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server.frontends.quick", "serve"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(_initialize(protocol))
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())
    proc.stdin.write(_message(method="notifications/initialized") + _message(id=2, method="tools/list"))
    proc.stdin.flush()
    messages = [first]
    while True:  # up to the tools/list answer, then everything until the server exits
        messages.append(json.loads(proc.stdout.readline()))
        if messages[-1].get("id") == 2:
            break
    proc.stdin.close()
    messages += [json.loads(line) for line in proc.stdout.read().splitlines() if line.strip()]
    assert proc.wait(60) == 0
    return messages


@pytest.fixture
def env(engine: object) -> dict[str, str]:
    """The session's settings plus a variable of their own, so this test's stored answers are its
    own (the configuration key covers every settings variable)."""
    return {**os.environ, "CODEBASE_TEST_STDIO_FRONT": uuid.uuid4().hex}


def _stored(env: dict[str, str], protocol: str = PROTOCOL) -> Path:
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        return stdio_front.answer_path(quick._home(), quick.configuration_key(), protocol)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_second_start_answers_initialize_from_the_stored_answer_and_only_once(env: dict[str, str]) -> None:
    first = _conversation(env)
    assert [m.get("id") for m in first] == [1, 2]
    assert first[0]["result"]["serverInfo"]["name"] == "codebase-mcp"
    path = _stored(env)
    assert json.loads(path.read_text()) == first[0]["result"], "FastMCP's answer is stored"

    # A marked stored answer shows where the second start's answer came from; FastMCP's own
    # response to the replayed request must not reach the client as a second message with id 1.
    marked = {**first[0]["result"], "instructions": "from the stored answer"}
    path.write_text(json.dumps(marked))
    second = _conversation(env)
    assert [m.get("id") for m in second] == [1, 2], second
    assert second[0]["result"] == marked
    assert second[1]["result"]["tools"] == first[1]["result"]["tools"], (
        "the server saw the whole conversation"
    )
    # The stored answer differed from FastMCP's: it is replaced for next time.
    assert json.loads(path.read_text()) == first[0]["result"]


def test_another_protocol_version_or_a_bad_stored_answer_gets_fastmcps_own(env: dict[str, str]) -> None:
    first = _conversation(env)
    other = "2025-03-26"
    path = _stored(env, other)
    path.write_text(json.dumps({**first[0]["result"], "serverInfo": {"name": "someone-else"}}))
    answered = _conversation(env, other)
    assert [m.get("id") for m in answered] == [1, 2]
    assert answered[0]["result"]["serverInfo"]["name"] == "codebase-mcp"
    assert answered[0]["result"]["protocolVersion"] == other
    for garbage in ("not json", "[]", json.dumps({"serverInfo": "x"})):
        path.write_text(garbage)
        assert stdio_front.load_answer(path) is None
    assert stdio_front.load_answer(_stored(env)) == first[0]["result"]


def test_the_initialize_response_is_dropped_even_when_split_across_reads() -> None:
    """The server's output arrives in arbitrary pieces; only the one response goes."""
    request_id = 7
    lines = [
        _message(id=request_id, result={"serverInfo": {"name": "codebase-mcp"}, "protocolVersion": "x"}),
        _message(method="notifications/message", params={"data": "after"}),
        _message(id=8, result={}),
    ]
    data = b"".join(lines)
    from_server, to_copier = os.pipe()
    from_copier, client = os.pipe()
    kept: list[Any] = []
    copier = threading.Thread(
        target=stdio_front._copy_output, args=(from_server, client, request_id, True, kept.append)
    )
    copier.start()
    for i in range(0, len(data), 5):
        os.write(to_copier, data[i : i + 5])
    os.close(to_copier)
    copier.join(10)
    os.close(client)
    with os.fdopen(from_copier, "rb") as received:
        assert received.read() == b"".join(lines[1:])
    assert kept == [json.loads(lines[0])["result"]]


def test_only_stdio_serve_takes_the_early_path() -> None:
    assert quick.stdio_serve(["serve"]) and quick.stdio_serve(["serve", "--transport", "stdio", "--watch"])
    assert not quick.stdio_serve(["serve", "--transport", "http"])
    assert not quick.stdio_serve(["serve", "--transport=http"])
    assert not quick.stdio_serve(["serve", "--help"]) and not quick.stdio_serve(["jobs"])
