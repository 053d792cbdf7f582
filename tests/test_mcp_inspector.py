"""The official MCP Inspector CLI (npm @modelcontextprotocol/inspector, installed by
scripts/install_test_tools) against `codebase-mcp serve` over stdio: `tools/list --strict` finds
no schema portability problem and sees an output schema and the four hints on every tool, and a
tool call returns structured content that matches its schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_mcp_conventions import EXPECTED_TOOLS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
VERSION = "2.12.0"  # the pin in scripts/install_test_tools
INSPECTOR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / f"codebase-mcp/inspector-{VERSION}/node_modules/.bin/mcp-inspector"
)
if not INSPECTOR.exists():
    pytest.skip(
        f"the MCP Inspector is not installed at {INSPECTOR} (scripts/install_test_tools)",
        allow_module_level=True,
    )


def _inspect(tmp_path: Path, *method: str) -> tuple[int, Any, str]:
    config = tmp_path / "mcp.json"
    # The Inspector starts the server with a minimal environment plus these (PYTHONPATH: a source
    # checkout tested without reinstalling runs its own code, migrations included).
    env = {
        k: v for k, v in os.environ.items() if k.startswith(("CODEBASE_", "EMBEDDING_")) or k == "PYTHONPATH"
    }
    # Generous timeouts: the server's first start on a loaded CI machine takes tens of seconds.
    entry = {
        "command": sys.executable,
        "args": ["-m", "mcp_server.frontends.quick", "serve"],  # what the executable runs
        "env": env,
        "connectionTimeout": 600_000,
        "requestTimeout": 600_000,
    }
    config.write_text(json.dumps({"mcpServers": {"codebase": entry}}))
    proc = subprocess.run(
        [str(INSPECTOR), "--cli", "--config", str(config), "--server", "codebase", *method],
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
        env={**os.environ, "MCP_INSPECTOR_SECRET_STORE": "memory"},
    )
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        output = None
    return proc.returncode, output, proc.stderr


def test_the_inspector_sees_schemas_and_hints_on_every_tool(settings: Any, tmp_path: Path) -> None:
    code, listing, stderr = _inspect(tmp_path, "--method", "tools/list", "--strict")
    assert code == 0, stderr[-3000:]
    tools = {tool["name"]: tool for tool in listing["tools"]}
    assert set(tools) == EXPECTED_TOOLS
    for name, tool in tools.items():
        assert tool["outputSchema"]["type"] == "object" and tool["outputSchema"]["properties"], name
        hints = tool["annotations"]
        assert {
            k: type(hints[k]) for k in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
        } == {"readOnlyHint": bool, "destructiveHint": bool, "idempotentHint": bool, "openWorldHint": bool}, (
            name
        )


def test_a_tool_call_through_the_inspector_returns_structured_content(settings: Any, tmp_path: Path) -> None:
    code, result, stderr = _inspect(tmp_path, "--method", "tools/call", "--tool-name", "list_indexing_jobs")
    assert code == 0, stderr[-3000:]
    assert result["structuredContent"] == {"jobs": [], "count": 0}
    assert not result.get("isError")
