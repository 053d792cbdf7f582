"""The MCP server follows the protocol's conventions: its own name and version, an output schema and
behaviour annotations on every tool, structured results that validate against those schemas, and
progress notifications from wait_for_indexing while a job runs.

In-memory `Client(server)` against the real database and real indexing subprocesses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from fastmcp import Client

from mcp_server.core.settings import Settings
from mcp_server.core.version import package_version
from mcp_server.frontends.mcp_tools import build_server

pytestmark = pytest.mark.timeout(180)

READ_ONLY = {
    "get_indexing_status",
    "wait_for_indexing",
    "search_code",
    "list_indexing_jobs",
    "find_definition",
    "find_references",
    "get_file_outline",
    "read_code",
    "list_repositories",
}
DESTRUCTIVE = {"cancel_indexing_job", "delete_repository"}
EXPECTED_TOOLS = READ_ONLY | DESTRUCTIVE | {"start_indexing_background"}


def _run(coro_fn: Any) -> Any:
    return anyio.run(coro_fn)


def test_the_server_reports_codebase_mcps_name_and_version(settings: Settings) -> None:
    async def go() -> Any:
        async with Client(build_server(settings)) as client:
            return client.server_info

    info = _run(go)
    assert info.name == "codebase-mcp"
    assert info.version == package_version()
    assert info.version != "4.1.6"  # not FastMCP's


def test_every_tool_has_an_object_output_schema_and_all_four_hints(settings: Settings) -> None:
    async def go() -> Any:
        async with Client(build_server(settings)) as client:
            return await client.list_tools()

    tools = {tool.name: tool for tool in _run(go)}
    assert set(tools) == EXPECTED_TOOLS
    for name, tool in tools.items():
        schema = tool.outputSchema
        assert schema is not None and schema["type"] == "object", name
        assert schema.get("properties"), f"{name}: the output schema names its fields"
        hints = tool.annotations
        assert hints is not None, name
        for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert isinstance(getattr(hints, _snake(hint)), bool), f"{name}: {hint}"
        assert hints.read_only_hint is (name in READ_ONLY), name
        assert hints.open_world_hint is False, name
        assert hints.destructive_hint is (name in DESTRUCTIVE), name


def _snake(hint: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in hint)


def test_structured_results_validate_against_the_declared_schemas(settings: Settings, make_repo: Any) -> None:
    repo: Path = make_repo({"pkg/money.py": "def add_tax(amount, rate):\n    return amount * (1 + rate)\n"})

    async def go() -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
        seen: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        async with Client(build_server(settings)) as client:
            schemas = {tool.name: tool.outputSchema for tool in await client.list_tools()}

            async def call(name: str, **arguments: Any) -> dict[str, Any]:
                result = await client.call_tool(name, arguments)
                assert result.structured_content is not None
                seen.setdefault(name, []).append((result.structured_content, schemas[name] or {}))
                return result.structured_content

            await call("start_indexing_background", repo_path=str(repo), dry_run=True)
            started = await call("start_indexing_background", repo_path=str(repo))
            await call("wait_for_indexing", job_id=started["job_id"], timeout_seconds=120)
            await call("get_indexing_status", job_id=started["job_id"])
            await call("search_code", query="tax on an amount", language="Python")
            await call("search_code", query="zzzqqq nothing like this", mode="lexical")
            await call("find_definition", symbol="add_tax")
            await call("find_references", symbol="add_tax")
            await call("get_file_outline", file_path="pkg/money.py")
            await call("read_code", file_path="pkg/money.py", start_line=1, end_line=2)
            listed = await call("list_repositories")
            await call("list_indexing_jobs")
            await call("cancel_indexing_job", job_id=started["job_id"])
            await call("delete_repository", repo_path=listed["repositories"][0]["repository"])
        return seen

    seen = _run(go)
    assert set(seen) == EXPECTED_TOOLS
    for calls in seen.values():
        for content, schema in calls:
            jsonschema.validate(content, schema)  # raises with the offending field
    assert seen["start_indexing_background"][0][0]["dry_run"] is True
    assert seen["wait_for_indexing"][0][0]["status"] == "completed"
    assert seen["search_code"][0][0]["results"], "'Python' is accepted like 'python'"


def test_wait_for_indexing_sends_increasing_progress_until_the_job_completes(
    settings: Settings, make_repo: Any
) -> None:
    files = {f"mod{i}/code_{i}.py": f"def function_{i}(x):\n    return x + {i}\n" * 30 for i in range(120)}
    repo: Path = make_repo(files)
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async def go() -> dict[str, Any]:
        async with Client(build_server(settings), progress_handler=on_progress) as client:
            started = await client.call_tool("start_indexing_background", {"repo_path": str(repo)})
            assert started.structured_content is not None
            final = await client.call_tool(
                "wait_for_indexing", {"job_id": started.structured_content["job_id"], "timeout_seconds": 150}
            )
            assert final.structured_content is not None
            return final.structured_content

    final = _run(go)
    assert final["status"] == "completed", final
    assert updates, "at least one progress notification"
    values = [progress for progress, _total, _message in updates]
    assert values == sorted(values) and len(set(values)) == len(values), "strictly increasing"
    assert all(total == 100.0 for _p, total, _m in updates)
    assert updates[-1][0] == 100.0
    assert all(message for _p, _t, message in updates)


def test_a_relative_path_is_still_refused_by_the_tool(settings: Settings) -> None:
    async def go() -> str:
        async with Client(build_server(settings)) as client:
            result = await client.call_tool(
                "start_indexing_background", {"repo_path": "."}, raise_on_error=False
            )
            return str(result.content[0].text)  # type: ignore[union-attr]

    assert "relative" in _run(go)
