"""The embedded PostgreSQL: shared safely by processes that start at the same moment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from mcp_server.db import database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PROBE = """
import json, sys
from sqlalchemy import text
from mcp_server.core.settings import load_settings
from mcp_server.db.database import get_engine, current_revision
engine = get_engine(load_settings())
with engine.connect() as conn:
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    postmaster = conn.execute(text("SELECT setting FROM pg_settings WHERE name = 'data_directory'")).scalar()
print(json.dumps({"revision": current_revision(engine), "data_directory": postmaster}))
"""


@pytest.fixture(scope="module")
def head(engine: Engine) -> str:
    """The newest migration: what every probe must find applied."""
    return database.head_revision(engine)


def _start_probes(home: Path, count: int) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "CODEBASE_MCP_HOME": str(home)}
    return [
        subprocess.Popen(
            [sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]


def test_three_processes_starting_at_once_share_one_migrated_server(tmp_path: Path, head: str) -> None:
    home = tmp_path / "home"
    procs = _start_probes(home, 3)
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert {o["revision"] for o in outputs} == {head}
    assert {o["data_directory"] for o in outputs} == {str((home / "pgdata").resolve())}


def test_an_emptied_holder_list_left_by_a_killed_process_is_repaired(tmp_path: Path, head: str) -> None:
    home = tmp_path / "home"
    (first,) = _start_probes(home, 1)
    assert first.wait(timeout=120) == 0
    holders = home / "pgdata" / ".handle_pids.json"
    holders.write_text("")  # what a process killed mid-write leaves behind
    (second,) = _start_probes(home, 1)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["revision"] == head


def test_the_embedded_server_runs_with_its_own_settings_for_bulk_writes(engine: Engine) -> None:
    """The suite's server was started by the product (db.embedded), so it shows what users get."""
    from sqlalchemy import text

    from mcp_server.db.embedded import SERVER_SETTINGS

    assert SERVER_SETTINGS  # otherwise this test says nothing
    with engine.connect() as conn:
        for name, value in SERVER_SETTINGS.items():
            source = conn.execute(
                text("SELECT source FROM pg_settings WHERE name = :n"), {"n": name}
            ).scalar_one()
            assert (conn.execute(text(f"SHOW {name}")).scalar_one(), source) == (value, "command line")
