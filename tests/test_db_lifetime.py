"""The embedded PostgreSQL lingers CODEBASE_LINGER_SECONDS after its last user, then stops;
`codebase-mcp db stop` stops it at once; a process still using it keeps it up whatever the timer.

Each test has its own CODEBASE_MCP_HOME, so the server it watches is its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability.support import wait_for

from mcp_server.db import lifetime

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
CLI = [sys.executable, "-m", "mcp_server.frontends.cli"]


def _env(home: Path, linger: float) -> dict[str, str]:
    return {**os.environ, "CODEBASE_MCP_HOME": str(home), "CODEBASE_LINGER_SECONDS": str(linger)}


def _cli(home: Path, linger: float, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=_env(home, linger), capture_output=True, text=True, timeout=120, check=False
    )


def _stop(home: Path) -> None:
    _cli(home, 0, "db", "stop")
    if (pid := lifetime.postmaster_pid(home / "pgdata")) is not None:
        os.kill(pid, 15)


def test_the_server_outlives_the_command_by_the_linger_time_then_stops(tmp_path: Path) -> None:
    home, pgdata = tmp_path / "home", tmp_path / "home" / "pgdata"
    try:
        done = _cli(home, 4, "db", "current")
        assert done.returncode == 0, done.stderr
        finished = time.monotonic()
        assert lifetime.postmaster_pid(pgdata) is not None, "still up after its only user exited"
        wait_for(lambda: lifetime.lingerer_running(pgdata), timeout=30, what="the lingerer")
        wait_for(lambda: lifetime.postmaster_pid(pgdata) is None, timeout=60, what="the server to stop")
        waited = time.monotonic() - finished
        assert waited >= 3.5, f"stopped after {waited:.1f} s, before the linger time"
        assert not lifetime.lingerer_running(pgdata)
    finally:
        _stop(home)


def test_db_stop_stops_a_lingering_server_now_and_db_status_says_so(tmp_path: Path) -> None:
    home, pgdata = tmp_path / "home", tmp_path / "home" / "pgdata"
    try:
        assert _cli(home, 600, "db", "current").returncode == 0
        wait_for(lambda: lifetime.lingerer_running(pgdata), timeout=30, what="the lingerer")
        status = _cli(home, 600, "db", "status")
        assert "running" in status.stdout and "lingering    yes" in status.stdout, status.stdout
        stopped = _cli(home, 600, "db", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped" in stopped.stdout
        assert lifetime.postmaster_pid(pgdata) is None
        assert "stopped" in _cli(home, 600, "db", "status").stdout
    finally:
        _stop(home)


def test_a_process_still_using_the_server_keeps_it_up_past_the_linger_time(tmp_path: Path) -> None:
    home, pgdata = tmp_path / "home", tmp_path / "home" / "pgdata"
    server = subprocess.Popen(
        [*CLI, "serve"],
        env=_env(home, 2),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: server.pid in lifetime.holders(pgdata), timeout=60, what="the server to join")
        wait_for(lambda: lifetime.lingerer_running(pgdata), timeout=30, what="the lingerer")
        time.sleep(5)  # more than twice the linger time
        assert lifetime.postmaster_pid(pgdata) is not None
        refused = _cli(home, 2, "db", "stop")
        assert refused.returncode == 1 and f"pid {server.pid}" in refused.stderr, refused.stderr
        assert server.stdin is not None
        server.stdin.close()  # the client goes away
        server.wait(30)
        wait_for(lambda: lifetime.postmaster_pid(pgdata) is None, timeout=60, what="the server to stop")
    finally:
        if server.poll() is None:
            server.kill()
        _stop(home)


def test_commands_started_together_share_one_lingerer(tmp_path: Path) -> None:
    home, pgdata = tmp_path / "home", tmp_path / "home" / "pgdata"
    try:
        procs = [
            subprocess.Popen(
                [*CLI, "db", "current"],
                env=_env(home, 600),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(3)
        ]
        assert [p.wait(120) for p in procs] == [0, 0, 0]
        wait_for(lambda: lifetime.lingerer_running(pgdata), timeout=30, what="the lingerer")
        time.sleep(1.5)  # any extra lingerer would have given up by now
        lingerers = [
            pid
            for pid in lifetime.holders(pgdata)
            if b"mcp_server.db.lifetime" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(lingerers) == 1, lingerers
    finally:
        _stop(home)
