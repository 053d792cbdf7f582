"""Fault 3: PostgreSQL restarted, or away for a while, in the middle of an index run.

What the product promises: a restart (the server is back in well under a second) costs nothing,
the run completes; an outage of ten seconds fails the run with a reason that says the database
was lost, and the previous index stays searchable (docs/design.md: a local run does not wait an
outage out; the retry re-embeds only what was not written). Nothing hangs and no job stays
`running`. The
fault is real: the embedded server of this test session is restarted or stopped with pg_ctl.

The operator's side (status updates missed during an outage land once the database is back) is
tested against the control plane in tests/kubernetes/test_operator_resilience.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from database_faults import bring_database_back, database_is_up, pg_ctl
from fake_embedding_server import FakeEmbeddingServer
from fastmcp import Client
from fastmcp.exceptions import ToolError
from reliability.support import (
    TERMINAL,
    lexical_hits,
    many_functions,
    run_logs,
    service,
    stdio_transport,
    wait_for,
    wait_for_status,
    write_repo,
)
from sqlalchemy.engine import Engine

from mcp_server.core.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture
def database_comes_back(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Whatever a test does to the server, the next test finds it running."""
    monkeypatch.setenv("CODEBASE_CHUNK_PACK_LINES", "0")  # one chunk per function: a longer run
    yield
    bring_database_back(settings, engine)


def _start_slow_second_run(svc: Any, server: FakeEmbeddingServer, repo: Path, project: str) -> str:
    first = svc.start_indexing(str(repo), project_id=project)["job_id"]
    done = wait_for_status(svc, first, TERMINAL)
    assert done["status"] == "completed", done
    write_repo(repo, many_functions("newversion", files=40, functions=20))
    server.delay_seconds = 1.0
    before = server.requests
    job: str = svc.start_indexing(str(repo), project_id=project)["job_id"]
    wait_for_status(svc, job, {"running"})
    try:
        wait_for(lambda: server.requests > before + 2, timeout=30, what="the run to be embedding")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {svc.get_status(job)}\n{run_logs(job)}") from None
    return job


def _settle(svc: Any, job: str, project: str, since: float, *, expected: str) -> dict[str, Any]:
    """The job ends by itself (no reconcile from here) as `expected`, and the index is consistent."""
    try:
        final = wait_for_status(svc, job, TERMINAL, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run_logs(job)}") from None
    print(
        f"\nfault 3 [{project}]: {final['status']} {time.monotonic() - since:.2f} s after the fault: "
        f"{final['error_message']}"
    )
    assert final["status"] == expected, final
    if expected == "failed":
        assert "database" in final["error_message"].lower()
        assert lexical_hits(svc, "oldversion", project), "the previous index stays searchable"
        assert not lexical_hits(svc, "newversion", project)
    else:
        assert lexical_hits(svc, "newversion", project)
        assert not lexical_hits(svc, "oldversion", project)
    assert not svc.list_jobs(status="running")["jobs"]
    return final


def test_a_database_restart_mid_run_ends_the_job_cleanly(
    settings: Settings,
    slow_embedder: FakeEmbeddingServer,
    tmp_path: Path,
    database_comes_back: None,
) -> None:
    svc = service()
    repo = write_repo(tmp_path / "repo", many_functions("oldversion", files=40, functions=20))
    job = _start_slow_second_run(svc, slow_embedder, repo, "restart")
    began = time.monotonic()
    pg_ctl(settings, "-w", "-m", "fast", "restart")
    print(f"\nfault 3 [restart]: pg_ctl restart took {time.monotonic() - began:.2f} s")
    slow_embedder.delay_seconds = 0
    _settle(svc, job, "restart", began, expected="completed")


def test_a_database_away_for_ten_seconds_mid_run_ends_the_job_cleanly(
    settings: Settings,
    slow_embedder: FakeEmbeddingServer,
    tmp_path: Path,
    database_comes_back: None,
) -> None:
    svc = service()
    repo = write_repo(tmp_path / "repo", many_functions("oldversion", files=40, functions=20))
    job = _start_slow_second_run(svc, slow_embedder, repo, "outage")
    timings: dict[str, float] = {}

    async def scenario() -> str:
        async with Client(stdio_transport()) as client:
            await client.call_tool("get_indexing_status", {"job_id": job})
            timings["stopped"] = time.monotonic()
            pg_ctl(settings, "-w", "-m", "fast", "stop")
            with anyio.fail_after(15), pytest.raises(ToolError) as refused:
                await client.call_tool("get_indexing_status", {"job_id": job})
            # The indexer finishes embedding and reaches for the database while it is away.
            slow_embedder.delay_seconds = 0
            await anyio.sleep(10)
            if not database_is_up(svc.engine):
                pg_ctl(settings, "-w", "restart")
            timings["restarted"] = time.monotonic()
            with anyio.fail_after(15):
                status = await client.call_tool("get_indexing_status", {"job_id": job})
            assert status.structured_content and status.structured_content["job_id"] == job
            timings["answering"] = time.monotonic()
            return str(refused.value)

    refusal = anyio.run(scenario)
    print(f"\nfault 3 [outage]: the MCP server said while the database was down: {refusal}")
    print(
        f"fault 3 [outage]: the MCP server answered again "
        f"{timings['answering'] - timings['restarted']:.2f} s after the restart"
    )
    assert "database" in refusal.lower() and "internal error" not in refusal
    slow_embedder.delay_seconds = 0
    _settle(svc, job, "outage", timings["stopped"], expected="failed")
