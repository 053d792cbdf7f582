"""End to end over stdio: a real MCP client drives `codebase-mcp serve` as a subprocess.

start -> poll -> search -> restart the server -> the job's status is unchanged; and every refusal
comes back as an MCP tool error with a readable message.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SAMPLE = {
    "billing/invoice.py": '''"""Invoices."""


def compute_invoice_total(lines, tax_rate):
    """Sum the line amounts and apply the tax rate."""
    subtotal = sum(line.amount for line in lines)
    return subtotal * (1 + tax_rate)


class InvoiceRepository:
    def save(self, invoice):
        self.db.insert("invoices", invoice)
''',
    "net/retry.go": """package net

import "time"

// RetryWithBackoff calls fn until it succeeds, doubling the wait each time.
func RetryWithBackoff(fn func() error, attempts int) error {
	wait := 100 * time.Millisecond
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil {
			return nil
		}
		time.Sleep(wait)
		wait *= 2
	}
	return err
}
""",
    "README.md": "# Sample\n\nA tiny repository used by the end-to-end test.\n",
}


def _transport() -> StdioTransport:
    return StdioTransport(
        command=sys.executable,
        args=["-m", "mcp_server.frontends.quick", "serve"],  # what the executable runs
        env={**os.environ},
        keep_alive=False,
    )


async def _call(client: Client[Any], tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None
    data: dict[str, Any] = result.structured_content
    return data


async def _poll_until_terminal(client: Client[Any], job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen_statuses = []
    while time.monotonic() < deadline:
        status = await _call(client, "get_indexing_status", job_id=job_id)
        seen_statuses.append(status["status"])
        if status["status"] in ("completed", "failed", "cancelled"):
            return status
        await anyio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish; statuses seen: {seen_statuses[-5:]}")


def test_index_poll_search_and_restart_over_stdio(settings: Any, make_repo: Any) -> None:
    repo: Path = make_repo(SAMPLE)

    async def scenario() -> None:
        async with Client(_transport()) as client:
            tools = {t.name for t in await client.list_tools()}
            assert {
                "start_indexing_background",
                "get_indexing_status",
                "search_code",
                "list_indexing_jobs",
                "cancel_indexing_job",
                "list_repositories",
            } <= tools
            began = time.monotonic()
            started = await _call(client, "start_indexing_background", repo_path=str(repo), project_id="e2e")
            assert time.monotonic() - began < 5
            assert started["status"] == "pending" and started["project_id"] == "e2e"
            job_id = started["job_id"]
            final = await _poll_until_terminal(client, job_id)
            assert final["status"] == "completed", final
            assert final["files_indexed"] == 3
            assert final["chunks_created"] >= 3
            assert final["started_at"] and final["completed_at"]

            found = await _call(client, "search_code", query="exponential backoff retry", project_id="e2e")
            assert found["results"], found
            top = found["results"][0]
            assert top["file_path"] == "net/retry.go"
            assert top["repository"] == str(repo.resolve())
            assert top["start_line"] >= 1 and top["end_line"] >= top["start_line"]
            assert "RetryWithBackoff" in top["content"]

            elsewhere = await _call(
                client, "search_code", query="exponential backoff retry", project_id="other"
            )
            assert elsewhere["results"] == []

            listed = await _call(client, "list_indexing_jobs", project_id="e2e")
            assert [j["job_id"] for j in listed["jobs"]] == [job_id]

            # Freshness: when each result's repository was last synced (no watcher here: unknown).
            assert top["last_synced_at"] and top["changes_pending"] is None
            status = await _call(client, "get_indexing_status", job_id=job_id)
            assert status["last_synced_at"] == top["last_synced_at"]
            repos = await _call(client, "list_repositories", project_id="e2e")
            (only,) = repos["repositories"]
            assert only["repository"] == str(repo.resolve()) and only["files"] == 3
            assert only["chunks"] == final["chunks_created"] and only["watched"] is False

        # A new server process sees the same job, unchanged.
        async with Client(_transport()) as client:
            again = await _call(client, "get_indexing_status", job_id=job_id)
            assert {k: again[k] for k in ("status", "files_indexed", "chunks_created", "completed_at")} == {
                k: final[k] for k in ("status", "files_indexed", "chunks_created", "completed_at")
            }

    anyio.run(scenario)


REFUSALS = [
    ("start_indexing_background", {"repo_path": "relative/dir"}, "relative"),
    ("start_indexing_background", {"repo_path": "/var/data/../../etc/passwd"}, "'..'"),
    ("start_indexing_background", {"repo_path": "/no/such/dir/here"}, "does not exist"),
    ("start_indexing_background", {"repo_path": "/etc/hostname"}, "not a directory"),
    ("start_indexing_background", {"repo_path": "/tmp", "project_id": "../x"}, "invalid project_id"),
    ("start_indexing_background", {"repo_path": "/tmp", "project_id": "A" * 300}, "invalid project_id"),
    ("get_indexing_status", {"job_id": "not-a-uuid"}, "not a valid UUID"),
    ("get_indexing_status", {"job_id": "6f1c1d1e-0000-4000-8000-000000000000"}, "no indexing job"),
    ("cancel_indexing_job", {"job_id": "6f1c1d1e-0000-4000-8000-000000000000"}, "no indexing job"),
    ("search_code", {"query": "   "}, "non-empty"),
    ("search_code", {"query": "x", "limit": 0}, "limit"),
    ("search_code", {"query": "x", "limit": 1000}, "limit"),
    ("search_code", {"query": "x", "project_id": "Robert'); DROP TABLE chunks;--"}, "invalid project_id"),
]


def test_refusals_are_tool_errors_a_person_understands(settings: Any) -> None:
    """One server answers every malformed call with a tool error naming the problem."""

    async def scenario() -> list[str]:
        problems = []
        async with Client(_transport()) as client:
            for tool, arguments, fragment in REFUSALS:
                try:
                    await client.call_tool(tool, arguments)
                except ToolError as exc:
                    if fragment not in str(exc):
                        problems.append(f"{tool}({arguments}): {exc!s} lacks {fragment!r}")
                else:
                    problems.append(f"{tool}({arguments}) was accepted")
        return problems

    assert anyio.run(scenario) == []
