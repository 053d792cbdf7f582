"""The `codebase-mcp` executable: read-only commands answered by a warm helper process.

Why: a cold `codebase-mcp jobs` spends most of its time before it sends a query: importing
pydantic, SQLAlchemy and psycopg, checking the schema revision and joining the embedded server
(about 1.5 s of CPU on the 2-core test machine). This module imports only the standard library.
For the read-only commands (`jobs`, `status`, `search`, `repos`) it asks a helper over a Unix
socket; the helper runs the ordinary CLI (`cli.main`) with its output captured and sends the
bytes back, so both paths print exactly the same thing. Without a helper, the command runs
in-process as before and starts one for next time; the helper exits after CODEBASE_LINGER_SECONDS
without a request (0: no helper at all).

A helper serves one configuration: the socket's name is a hash of every environment variable the
settings read and of the installed code's modification times, so a changed variable or an upgrade
gets a fresh helper instead of stale answers. The socket lives in CODEBASE_MCP_HOME with mode 0600,
and the helper accepts only the read-only commands.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FAST_COMMANDS = frozenset({"jobs", "status", "search", "repos"})
# Prefixes of every variable `core.settings` reads (a test checks that none escapes them).
SETTINGS_PREFIXES = (
    "CODEBASE_",
    "DATABASE_",
    "EMBEDDING_",
    "INDEXER_",
    "INDEXING_",
    "MAX_CONCURRENT_",
    "WORKSPACE_",
    "POD_",
    "JOB_",
    "OPERATOR_",
    "KUEUE_",
)
CONNECT_TIMEOUT_SECONDS = 0.5
WRITING_SUBCOMMANDS = frozenset({"rm"})  # `repos rm` deletes: it never goes to the helper
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _home() -> Path:
    raw = os.environ.get("CODEBASE_MCP_HOME") or "~/.local/share/codebase-mcp"
    return Path(raw).expanduser()


def _linger_seconds() -> float:
    try:
        return float(os.environ.get("CODEBASE_LINGER_SECONDS") or 600)
    except ValueError:
        return 0.0  # the in-process path reports the bad value


def _code_stamp() -> int:
    newest = 0
    for folder, _dirs, files in os.walk(_PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return newest


def configuration_key() -> str:
    """What decides every answer: the settings' environment, the installed code, the interpreter."""
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIXES))
    return json.dumps([env, _code_stamp(), sys.executable])


def socket_path() -> Path:
    return _home() / f"cli-{hashlib.sha256(configuration_key().encode()).hexdigest()[:16]}.sock"


# --- framing: a 4-byte length, then JSON ------------------------------------------------------


def _send(sock: socket.socket, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _receive(sock: socket.socket) -> dict[str, Any]:
    header = _exactly(sock, 4)
    result: dict[str, Any] = json.loads(_exactly(sock, struct.unpack("!I", header)[0]))
    return result


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the helper closed the connection")
        chunks += chunk
    return bytes(chunks)


# --- the client (every `codebase-mcp` invocation) -----------------------------------------------


def _terminal() -> dict[str, Any]:
    tty = sys.stdout.isatty()
    return {
        "tty": tty,
        "columns": shutil.get_terminal_size((80, 24)).columns if tty else 80,
        "no_color": "NO_COLOR" in os.environ,
        "term": os.environ.get("TERM", ""),
    }


def ask_helper(argv: list[str], path: Path) -> int | None:
    """Run the command in the helper; None when there is no helper to ask."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_SECONDS)
        sock.connect(str(path))
    except OSError:
        return None
    with sock:
        sock.settimeout(None)
        try:
            _send(sock, {"argv": argv, "cwd": os.getcwd(), **_terminal()})
            reply = _receive(sock)
        except (OSError, ConnectionError, ValueError):
            return None  # the helper went away mid-request: nothing was printed, run it here
    sys.stdout.write(reply["stdout"])
    sys.stdout.flush()
    sys.stderr.write(reply["stderr"])
    code: int = reply["code"]
    return code


def start_helper(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.Popen(
        [sys.executable, "-P", "-m", "mcp_server.frontends.quick", "--serve", str(path)],
        cwd=str(path.parent),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def read_only(argv: Sequence[str]) -> bool:
    """Whether `argv` is one of the read-only commands the helper may run (conservative: an
    argument that looks like a writing subcommand anywhere sends it down the ordinary path)."""
    return bool(argv) and argv[0] in FAST_COMMANDS and not WRITING_SUBCOMMANDS & set(argv[1:])


def stdio_serve(argv: Sequence[str]) -> bool:
    """Whether `argv` runs the MCP server over stdio (`serve`, with no other transport asked)."""
    if not argv or argv[0] != "serve" or {"-h", "--help"} & set(argv):
        return False
    transport = "stdio"
    for i, arg in enumerate(argv):
        if arg == "--transport" and i + 1 < len(argv):
            transport = argv[i + 1]
        elif arg.startswith("--transport="):
            transport = arg.partition("=")[2]
    return transport == "stdio"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # `codebase-mcp jobs | head`: the reader left; say nothing more (Python's documented
        # recipe: point stdout at /dev/null so the flush at exit cannot fail again).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what a shell reports for a command its pipe reader closed


def _main(args: list[str]) -> int:
    if stdio_serve(args):
        from mcp_server.frontends import stdio_front

        def run_server() -> int:
            from mcp_server.frontends.cli import main as cli_main

            return cli_main(args)

        return stdio_front.serve(run_server, _home(), configuration_key())
    fast = (
        read_only(args)  # and no global options before the command (--log-level)
        and not {"-h", "--help"} & set(args)
        and _linger_seconds() > 0
    )
    if fast:
        path = socket_path()
        code = ask_helper(args, path)
        if code is not None:
            return code
        start_helper(path)
    from mcp_server.frontends.cli import main as cli_main

    return cli_main(args)


# --- the helper -----------------------------------------------------------------------------------


class Helper:
    """Runs read-only CLI commands for clients, one at a time, until idle for the linger time."""

    def __init__(self, path: Path, linger: float) -> None:
        self.path = path
        self.linger = linger
        self.last_request = time.monotonic()
        self.lock = threading.Lock()

    def run(self) -> int:
        import fcntl

        lock_fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another helper for this configuration is starting or running
        from mcp_server.frontends.commands import common

        common.reuse_services(True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            if self.path.exists():
                self.path.unlink()  # a dead helper's socket (a live one would have answered)
            listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        listener.listen(16)
        listener.settimeout(1.0)
        pid_file = self.path.with_suffix(".pid")
        pid_file.write_text(f"{os.getpid()}\n")
        try:
            while time.monotonic() - self.last_request < self.linger:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                pid_file.unlink()
        return 0

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = _receive(conn)
            except (OSError, ConnectionError, ValueError):
                return
            with self.lock:
                self.last_request = time.monotonic()
                reply = self._run_command(request)
                self.last_request = time.monotonic()
            with contextlib.suppress(OSError):
                _send(conn, reply)

    def _run_command(self, request: dict[str, Any]) -> dict[str, Any]:
        from rich.console import Console

        from mcp_server.frontends import cli
        from mcp_server.frontends.commands import common

        argv = [str(a) for a in request.get("argv", [])]
        if not read_only(argv):
            return {"stdout": "", "stderr": "error: not a read-only command\n", "code": 2}
        out, err = io.StringIO(), io.StringIO()
        options: dict[str, Any] = {
            "force_terminal": bool(request.get("tty")),
            "width": int(request.get("columns") or 80),
            "no_color": bool(request.get("no_color")),
        }
        if not request.get("tty"):
            options["color_system"] = None
        common.console = Console(file=out, **options)
        common.err_console = Console(file=err, stderr=True, soft_wrap=True, **options)
        code = 1
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            except Exception as exc:  # never leave a client without an answer
                err.write(f"error: {type(exc).__name__}: {exc}\n")
                code = 1
        return {"stdout": out.getvalue(), "stderr": err.getvalue(), "code": code}


def helper_pids(home: Path) -> list[int]:
    """The pids of the live helpers under `home` (for `codebase-mcp db stop`)."""
    pids = []
    for pid_file in home.glob("cli-*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"mcp_server.frontends.quick" in handle.read():
                    pids.append(pid)
        except (OSError, ValueError):
            continue
    return pids


def stop_helpers(home: Path, timeout: float = 10.0) -> None:
    pids = helper_pids(home)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
        time.sleep(0.05)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sys.exit(Helper(Path(sys.argv[2]), _linger_seconds()).run())
    sys.exit(main())
