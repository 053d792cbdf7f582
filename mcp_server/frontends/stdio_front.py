"""`codebase-mcp serve` over stdio: the client's `initialize` answered before the server has loaded.

Why: a stdio client starts the server and waits for the answer to `initialize`; importing FastMCP,
pydantic, SQLAlchemy and building the tools' schemas takes about 1.2 s of CPU on the 2-core test
machine, all of it before FastMCP can say anything. The answer itself never changes for the same
code, settings and requested protocol version, so this module (standard library only) keeps the
answer FastMCP gave last time and sends it at once, while the process goes on loading.

The server still sees the whole conversation: the `initialize` request is replayed to FastMCP
through a pipe on fd 0, and FastMCP's own response to it (the only message it would send twice)
is dropped from a pipe on fd 1; every other byte passes through unchanged, in order. Without a
stored answer (the first start, an upgrade, other settings, another protocol version) FastMCP's
response goes to the client as it is and is stored for next time. A stored answer is used only if
it is a JSON object naming this server; anything else is ignored and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

READ_SIZE = 65536
# How long the process waits, once the server has returned, for the last output to reach the
# client: a job's process that kept fd 1 open must not keep the server alive.
DRAIN_SECONDS = 5.0


def _read_first_line(fd: int) -> tuple[bytes, bytes]:
    """(the first line with its newline, or all input if it has none; bytes read after it)."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            return data, b""
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line + b"\n", rest


def _initialize_request(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if (
        isinstance(message, dict)
        and message.get("method") == "initialize"
        and isinstance(message.get("id"), int | str)
        and isinstance(message.get("params"), dict)
        and isinstance(message["params"].get("protocolVersion"), str)
    ):
        return message
    return None


def answer_path(home: Path, configuration_key: str, protocol_version: str) -> Path:
    """Where FastMCP's answer for this configuration and protocol version is kept."""
    key = hashlib.sha256(json.dumps([configuration_key, protocol_version]).encode()).hexdigest()[:16]
    return home / f"stdio-initialize-{key}.json"


def load_answer(path: Path) -> dict[str, Any] | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict):
        return None
    server = result.get("serverInfo")
    if isinstance(server, dict) and server.get("name") == "codebase-mcp" and "protocolVersion" in result:
        return result
    return None


def store_answer(path: Path, result: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(result, handle)
        os.replace(partial, path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_input(source: int, sink: int, first: bytes) -> None:
    """The client's bytes to the server: the first line again, then everything else."""
    try:
        _write_all(sink, first)
        while chunk := os.read(source, READ_SIZE):
            _write_all(sink, chunk)
    except OSError:
        pass  # the server stopped reading: it is going away
    finally:
        os.close(sink)


def _copy_output(
    source: int, sink: int, request_id: object, answered_early: bool, keep: Callable[[Any], None]
) -> None:
    """The server's bytes to the client, less its response to `initialize` when that was sent."""
    pending = b""
    looking = True
    try:
        while chunk := os.read(source, READ_SIZE):
            if not looking:
                _write_all(sink, chunk)
                continue
            pending += chunk
            out = b""
            while looking and b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                try:
                    message = json.loads(line)
                except ValueError:
                    message = None
                if isinstance(message, dict) and message.get("id") == request_id and "method" not in message:
                    looking = False
                    if isinstance(message.get("result"), dict):
                        keep(message["result"])
                    if answered_early:
                        continue
                out += line + b"\n"
            if not looking:
                out, pending = out + pending, b""
            _write_all(sink, out)
        _write_all(sink, pending)
    except OSError:
        pass  # the client went away
    finally:
        os.close(source)


def serve(run_server: Callable[[], int], home: Path, configuration_key: str) -> int:
    """Run `run_server` (which reads fd 0 and writes fd 1) with `initialize` answered early."""
    client_in, client_out = os.dup(0), os.dup(1)
    first, rest = _read_first_line(client_in)
    request = _initialize_request(first)
    answered_early = False
    path = None
    if request is not None:
        path = answer_path(home, configuration_key, request["params"]["protocolVersion"])
        stored = load_answer(path)
        if stored is not None:
            reply = {"jsonrpc": "2.0", "id": request["id"], "result": stored}
            _write_all(client_out, json.dumps(reply, separators=(",", ":")).encode() + b"\n")
            answered_early = True

    def keep(result: Any) -> None:
        if path is not None and result != load_answer(path):
            store_answer(path, result)

    server_in, to_server = os.pipe()
    from_server, server_out = os.pipe()
    os.dup2(server_in, 0)
    os.dup2(server_out, 1)
    os.close(server_in)
    os.close(server_out)
    threading.Thread(target=_copy_input, args=(client_in, to_server, first + rest), daemon=True).start()
    output = threading.Thread(
        target=_copy_output,
        args=(from_server, client_out, request["id"] if request else object(), answered_early, keep),
        daemon=True,
    )
    output.start()
    try:
        return run_server()
    finally:
        with contextlib.suppress(Exception):
            import sys

            sys.stdout.flush()
        # fd 1 was our only end of the output pipe (besides children that inherited it).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        output.join(DRAIN_SECONDS)
