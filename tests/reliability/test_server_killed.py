"""Fault 1: the MCP server killed (SIGKILL) while it has indexing jobs in flight.

What the product promises: a job's supervisor is detached from the server, so the running job
finishes with the right status and the queue keeps moving without any server; a restarted
server reports the outcome, no job stays `running` for ever, and the repository's previous
index is searchable the whole time.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from fake_embedding_server import FakeEmbeddingServer
from fastmcp import Client
from reliability.support import (
    TERMINAL,
    serve_processes,
    service,
    stdio_transport,
    wait_for,
    wait_for_status,
    write_repo,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _call(client: Client[Any], tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    data: dict[str, Any] = result.structured_content or {}
    return data


async def _until(client: Client[Any], job_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            status = await _call(client, "get_indexing_status", job_id=job_id)
            if status["status"] in statuses:
                return status
            await anyio.sleep(0.1)


async def _contents(client: Client[Any], query: str, project: str) -> list[str]:
    found = await _call(client, "search_code", query=query, project_id=project, mode="lexical")
    return [hit["content"] for hit in found["results"]]


def test_a_server_killed_mid_job_leaves_the_job_to_finish_and_the_old_index_searchable(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_INDEXING_JOBS", "1")
    repo = write_repo(tmp_path / "app", {"app.py": "def handler():\n    return 'firstversion'\n"})
    queued_repo = write_repo(
        tmp_path / "other", {"lib.py": "def queued_helper():\n    return 'queuedrepo'\n"}
    )
    timings: dict[str, float] = {}

    async def scenario() -> tuple[str, str]:
        async with Client(stdio_transport()) as client:
            first = await _call(client, "start_indexing_background", repo_path=str(repo), project_id="kill")
            assert (await _until(client, first["job_id"], TERMINAL))["status"] == "completed"

            (repo / "app.py").write_text("def handler():\n    return 'secondversion'\n")
            slow_embedder.delay_seconds = 8  # the run outlives the restart of the server
            second = await _call(client, "start_indexing_background", repo_path=str(repo), project_id="kill")
            queued = await _call(
                client, "start_indexing_background", repo_path=str(queued_repo), project_id="kill"
            )
            await _until(client, second["job_id"], {"running"})
            assert (await _call(client, "get_indexing_status", job_id=queued["job_id"]))[
                "status"
            ] == "pending"
            [server] = serve_processes()
            server.send_signal(signal.SIGKILL)
            timings["killed"] = time.monotonic()
            server.wait(10)
            with anyio.move_on_after(10):
                with contextlib.suppress(Exception):  # the server is gone: an error is fine, a hang not
                    await _call(client, "list_indexing_jobs")
        return second["job_id"], queued["job_id"]

    second, queued = anyio.run(scenario)

    async def after_restart() -> None:
        async with Client(stdio_transport()) as client:
            timings["restarted"] = time.monotonic()
            status = await _call(client, "get_indexing_status", job_id=second)
            assert status["status"] == "running", status
            # The old generation is what search sees until the new one is published.
            assert any("firstversion" in c for c in await _contents(client, "firstversion", "kill"))
            assert not await _contents(client, "secondversion", "kill")
            slow_embedder.delay_seconds = 0
            assert (await _until(client, second, TERMINAL))["status"] == "completed"
            timings["second done"] = time.monotonic()
            assert (await _until(client, queued, TERMINAL))["status"] == "completed"
            timings["queued done"] = time.monotonic()
            assert any("secondversion" in c for c in await _contents(client, "secondversion", "kill"))
            assert not await _contents(client, "firstversion", "kill")
            running = await _call(client, "list_indexing_jobs", status="running")
            assert running["jobs"] == []

    anyio.run(after_restart)
    print(
        f"\nfault 1: server restarted {timings['restarted'] - timings['killed']:.2f} s after the kill; "
        f"running job completed {timings['second done'] - timings['killed']:.2f} s after it, "
        f"queued job {timings['queued done'] - timings['killed']:.2f} s after it"
    )


def test_the_queue_moves_on_with_no_server_at_all(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, tmp_path: Path
) -> None:
    """The server is killed and never restarted: the supervisor of the running job dispatches the
    pending one itself, and both end `completed` (read straight from the jobs table)."""
    monkeypatch.setenv("MAX_CONCURRENT_INDEXING_JOBS", "1")
    repos = [write_repo(tmp_path / f"r{i}", {"m.py": f"def f{i}():\n    return {i}\n"}) for i in range(2)]

    async def scenario() -> list[str]:
        async with Client(stdio_transport()) as client:
            slow_embedder.delay_seconds = 2
            ids = [
                (await _call(client, "start_indexing_background", repo_path=str(r), project_id="alone"))[
                    "job_id"
                ]
                for r in repos
            ]
            await _until(client, ids[0], {"running"})
            [server] = serve_processes()
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            with anyio.move_on_after(5):
                with contextlib.suppress(Exception):  # the server is gone: an error is fine, a hang not
                    await _call(client, "list_indexing_jobs")
        return ids

    ids = anyio.run(scenario)
    assert not serve_processes()
    svc = service()
    for job_id in ids:
        assert wait_for_status(svc, job_id, TERMINAL, timeout=60)["status"] == "completed"
    wait_for(lambda: not svc.list_jobs(status="running")["jobs"], timeout=5)
