"""Issue 12, items 4, 5 and 9: the embedded PostgreSQL on a broken or shared machine.

Before: with the pid of an unrelated live process in `postmaster.pid`, `codebase-mcp jobs` printed
a traceback and the unrelated process was killed, and an empty or garbage file broke every command;
past about 93 characters of CODEBASE_MCP_HOME the socket moved to a world-writable directory with
`trust` authentication (every local user a superuser) and the postmaster's environment held
EMBEDDING_API_KEY; after `kill -9` of the postmaster a running server answered "retry in a moment"
(and /healthz 503) until some other process restarted PostgreSQL, which then was never stopped.
Each test uses its own CODEBASE_MCP_HOME, so the server it breaks is its own.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from reliability.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CLI = (sys.executable, "-m", "mcp_server.frontends.cli")
API_KEY = "sk-embedding-key-Qw81Zx"


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEBASE_MCP_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "mcp_server.frontends.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _postmaster(pgdata: Path) -> psutil.Process | None:
    try:
        proc = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return None
    try:
        ok = proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return None
    return proc if ok else None


@pytest.fixture
def unrelated() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("content", ["live-unrelated", "", "garbage\n\x00\xff not a pid\n"])
def test_a_stale_pid_file_is_removed_and_never_signalled(
    tmp_path: Path, unrelated: subprocess.Popen[bytes], content: str
) -> None:
    home = tmp_path / "home"
    first = _cli(home, "jobs")
    assert first.returncode == 0, first.stderr[-2000:]
    pgdata = home / "pgdata"
    assert _postmaster(pgdata) is None, "the last user stopped the server"
    if content == "live-unrelated":
        content = f"{unrelated.pid}\n{pgdata}\n1700000000\n5432\n{pgdata}\n\n  5432001 0\nready   \n"
    (pgdata / "postmaster.pid").write_text(content, errors="surrogateescape")
    again = _cli(home, "jobs")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    assert unrelated.poll() is None, "the unrelated process was signalled"
    assert psutil.Process(unrelated.pid).status() != psutil.STATUS_ZOMBIE
    assert _postmaster(pgdata) is None


def _long_home(tmp_path: Path) -> Path:
    home = tmp_path / ("h" * 60) / ("o" * 60) / "home"
    assert len(str(home / "pgdata" / ".s.PGSQL.5432")) > 108
    return home


def _connect(socket_dir: str, password: str | None) -> subprocess.CompletedProcess[str]:
    code = (
        "import psycopg, sys\n"
        "try:\n"
        f"    psycopg.connect(host={socket_dir!r}, user='postgres', dbname='postgres', "
        f"password={password!r}, passfile='/dev/null', connect_timeout=5).close()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, str(exc).strip().splitlines()[0]); sys.exit(1)\n"
        "print('connected')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_long_home_keeps_a_private_socket_with_password_auth_and_a_clean_environment(
    tmp_path: Path,
) -> None:
    home = _long_home(tmp_path)
    env = {**os.environ, "CODEBASE_MCP_HOME": str(home), "EMBEDDING_API_KEY": API_KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "mcp_server.frontends.cli", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        postmaster = wait_for(lambda: _postmaster(home / "pgdata"), timeout=90, what="the database to start")

        def ready_socket_dir() -> str | None:
            lines = (home / "pgdata" / "postmaster.pid").read_text().splitlines()
            return lines[4].strip() if len(lines) > 7 and lines[7].strip() == "ready" else None

        socket_dir = wait_for(ready_socket_dir, timeout=30, what="the server to be ready")
        info = os.stat(socket_dir)
        assert stat.S_IMODE(info.st_mode) == 0o700, oct(info.st_mode)
        assert info.st_uid == postmaster.uids().real
        hba = (home / "pgdata" / "pg_hba.conf").read_text()
        assert "trust" not in hba and "scram-sha-256" in hba
        # Without the password, even the owner is refused; another local user cannot reach the socket.
        refused = _connect(socket_dir, None)
        assert refused.returncode == 1 and "connected" not in refused.stdout, refused.stdout
        if os.geteuid() == 0:
            # Another local user cannot even reach the socket.
            probe = (
                "import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "try:\n"
                f"    s.connect({socket_dir + '/.s.PGSQL.5432'!r})\n"
                "except OSError as exc:\n"
                "    print(type(exc).__name__); sys.exit(1)\n"
                "print('reached')\n"
            )
            stranger = subprocess.run(
                ["/usr/bin/python3", "-c", probe],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                cwd="/",
                user="nobody",
                group="nogroup",
                extra_groups=[],
            )
            assert stranger.stdout.strip() == "PermissionError", stranger.stdout + stranger.stderr
        password = (home / "pgpass").read_text().strip().rsplit(":", 1)[1]
        assert stat.S_IMODE(os.stat(home / "pgpass").st_mode) == 0o600
        assert _connect(socket_dir, password).stdout.strip() == "connected"
        environment = Path(f"/proc/{postmaster.pid}/environ").read_bytes()
        assert API_KEY.encode() not in environment and b"EMBEDDING_API_KEY" not in environment
        assert b"CODEBASE_MCP_HOME" not in environment
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(60)
    wait_for(lambda: _postmaster(home / "pgdata") is None, timeout=30, what="the database to stop")
    assert not os.path.exists(socket_dir), "the private socket directory is removed with the server"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_killed_postmaster_is_restarted_by_the_server_and_stopped_with_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = _free_port()
    env = {**os.environ, "CODEBASE_MCP_HOME": str(home)}
    server = subprocess.Popen(
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
        stderr=(tmp_path / "server.log").open("wb"),
        env=env,
    )
    healthz = f"http://127.0.0.1:{port}/healthz"

    def healthy() -> bool:
        try:
            return httpx.get(healthz, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, timeout=90, interval=0.2, what="the server to be healthy")
        first = _postmaster(home / "pgdata")
        assert first is not None
        first.send_signal(signal.SIGKILL)
        wait_for(lambda: not first.is_running() or first.status() == psutil.STATUS_ZOMBIE, timeout=10)
        try:
            wait_for(healthy, timeout=60, interval=0.2, what="the server to restart its database")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'server.log').read_text()[-3000:]}") from None
        second = _postmaster(home / "pgdata")
        assert second is not None and second.pid != first.pid
        # Another process of the same user joins the restarted server instead of starting its own.
        listing = _cli(home, "jobs", "--json")
        assert listing.returncode == 0, listing.stderr[-2000:]
        assert _postmaster(home / "pgdata") is not None and _postmaster(home / "pgdata").pid == second.pid  # type: ignore[union-attr]
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        wait_for(lambda: not second.is_running(), timeout=30, what="the restarted database to stop")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if (leftover := _postmaster(home / "pgdata")) is not None:
            leftover.terminate()
