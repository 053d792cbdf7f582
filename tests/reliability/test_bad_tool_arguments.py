"""Bad input 6 and 8 through a real MCP client over stdio: every malformed call is a tool error
with a short message that names the problem, the server keeps serving, and the database gains
no row. Plus the path rules that need a configured server (allowed roots, symlinked roots).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
import unprivileged
from fastmcp import Client
from fastmcp.exceptions import ToolError
from reliability.support import row_counts, service, stdio_transport
from sqlalchemy.engine import Engine

from mcp_server.core.errors import InvalidRepositoryPath

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

UNKNOWN_JOB = str(uuid.uuid4())
MEGABYTE = "find the function that parses dates " * 30_000  # about 1 MB


def _refusals(tmp: Path) -> list[tuple[str, dict[str, Any], str]]:
    """(tool, arguments, a fragment the error must contain; "" when any clear error will do)."""
    existing = str(tmp)
    return [
        # --- repository paths (bad input 6) ---
        ("start_indexing_background", {"repo_path": "relative/dir"}, "relative"),
        ("start_indexing_background", {"repo_path": "."}, "relative"),
        ("start_indexing_background", {"repo_path": ".."}, "relative"),
        ("start_indexing_background", {"repo_path": existing + "/.."}, "'..'"),
        ("start_indexing_background", {"repo_path": existing + "/../" + tmp.name}, "'..'"),
        ("start_indexing_background", {"repo_path": "/../etc"}, "'..'"),
        ("start_indexing_background", {"repo_path": "~"}, "'~'"),
        ("start_indexing_background", {"repo_path": "~root/code"}, "'~'"),
        ("start_indexing_background", {"repo_path": existing + "\n/etc"}, "line break"),
        ("start_indexing_background", {"repo_path": existing + "\r"}, "line break"),
        ("start_indexing_background", {"repo_path": existing + "\x00"}, "NUL"),
        # Bytes that are not UTF-8 cannot travel in MCP's JSON; see the command-line test below.
        ("start_indexing_background", {"repo_path": "/" + "a" * 5000}, "longer than"),
        ("start_indexing_background", {"repo_path": ""}, "non-empty"),
        ("start_indexing_background", {"repo_path": "/dev/null"}, "not a directory"),
        ("start_indexing_background", {"repo_path": "/proc/self/fd/0"}, ""),
        ("start_indexing_background", {"repo_path": "/no/such/dir"}, "does not exist"),
        # --- wrong types ---
        ("start_indexing_background", {"repo_path": 123}, "repo_path"),
        ("start_indexing_background", {"repo_path": ["/tmp"]}, "repo_path"),
        ("start_indexing_background", {"repo_path": None}, "repo_path"),
        ("start_indexing_background", {}, "repo_path"),
        ("start_indexing_background", {"repo_path": existing, "force_reindex": "maybe"}, "force_reindex"),
        ("start_indexing_background", {"repo_path": existing, "project_id": 7}, "project_id"),
        ("search_code", {"query": "dates", "limit": "ten"}, "limit"),
        ("search_code", {"query": "dates", "limit": 2.5}, "limit"),
        ("search_code", {"query": 42}, "query"),
        ("search_code", {"query": {"$ne": ""}}, "query"),
        ("search_code", {"query": "dates", "mode": "fuzzy"}, "mode"),
        ("search_code", {"query": "dates", "concise": "sometimes"}, "concise"),
        ("list_indexing_jobs", {"limit": "ten"}, "limit"),
        ("list_indexing_jobs", {"status": "exploded"}, "status"),
        ("get_indexing_status", {"job_id": 12345}, "job_id"),
        ("get_indexing_status", {"job_id": None}, "job_id"),
        # --- huge strings ---
        ("search_code", {"query": MEGABYTE}, "longer than"),
        ("get_indexing_status", {"job_id": "7" * 1_000_000}, "UUID"),
        (
            "start_indexing_background",
            {"repo_path": existing, "project_id": "p" * 1_000_000},
            "invalid project_id",
        ),
        # --- job ids ---
        ("get_indexing_status", {"job_id": "not-a-uuid"}, "not a valid UUID"),
        ("get_indexing_status", {"job_id": ""}, "not a valid UUID"),
        ("get_indexing_status", {"job_id": "' OR 1=1 --"}, "not a valid UUID"),
        ("get_indexing_status", {"job_id": UNKNOWN_JOB}, "no indexing job"),
        ("get_indexing_status", {"job_id": UNKNOWN_JOB, "project_id": "Other"}, "invalid project_id"),
        ("cancel_indexing_job", {"job_id": UNKNOWN_JOB}, "no indexing job"),
        ("cancel_indexing_job", {"job_id": "../../etc/passwd"}, "not a valid UUID"),
        # --- project ids ---
        *[
            ("start_indexing_background", {"repo_path": existing, "project_id": bad}, "invalid project_id")
            for bad in [
                "../x",
                "x/../y",
                "a'; DROP TABLE chunks;--",
                "Upper",
                "a" * 64,
                "-x",
                "x-",
                "",
                "a b",
                "déf",
            ]
        ],
        ("search_code", {"query": "dates", "project_id": "a' OR '1'='1"}, "invalid project_id"),
        ("search_code", {"query": "dates", "project_id": "A" * 300}, "invalid project_id"),
        ("list_indexing_jobs", {"project_id": "../default"}, "invalid project_id"),
        # --- ranges and empties ---
        ("search_code", {"query": ""}, "non-empty"),
        ("search_code", {"query": " \n\t "}, "non-empty"),
        ("search_code", {"query": "dates", "limit": 0}, "limit"),
        ("search_code", {"query": "dates", "limit": -5}, "limit"),
        ("search_code", {"query": "dates", "limit": 101}, "limit"),
        ("search_code", {"query": "dates", "limit": 10**12}, "limit"),
        ("search_code", {"query": "dates", "context_lines": 1000}, "context_lines"),
        ("search_code", {"query": "dates", "max_chars": 0}, "max_chars"),
        ("search_code", {"query": "dates", "path": "src/\x00"}, "path"),
        ("search_code", {"query": "dates", "language": "python'; --"}, "language"),
        ("search_code", {"query": "dates", "file_type": "py;rm -rf"}, "file_type"),
        ("list_indexing_jobs", {"limit": 0}, "limit"),
        ("list_indexing_jobs", {"limit": 100_000}, "limit"),
        # --- no such tool ---
        ("drop_all_indexes", {}, ""),
    ]


def test_every_malformed_call_is_a_short_tool_error_and_writes_nothing(
    engine: Engine, settings: Any, tmp_path: Path
) -> None:
    refusals = _refusals(tmp_path)
    before = row_counts(engine)

    async def scenario() -> list[str]:
        problems = []
        async with Client(stdio_transport()) as client:
            for tool, arguments, fragment in refusals:
                shown = {
                    k: (v[:40] + "..." if isinstance(v, str) and len(v) > 40 else v)
                    for k, v in arguments.items()
                }
                try:
                    with anyio.fail_after(20):
                        await client.call_tool(tool, arguments)
                except ToolError as exc:
                    message = str(exc)
                    print(f"{tool}({shown}) -> {message[:160]!r}")
                    if fragment and fragment.lower() not in message.lower():
                        problems.append(f"{tool}({shown}): {message[:300]!r} lacks {fragment!r}")
                    if len(message) > 1000:
                        problems.append(f"{tool}({shown}): a {len(message)}-character message")
                    if "internal error" in message or "Traceback" in message:
                        problems.append(f"{tool}({shown}): {message[:300]!r}")
                except Exception as exc:
                    problems.append(f"{tool}({shown}) raised {type(exc).__name__}: {str(exc)[:300]}")
                else:
                    problems.append(f"{tool}({shown}) was accepted")
            # Still serving.
            try:
                listed = await client.call_tool("list_indexing_jobs", {})
            except Exception as exc:
                problems.append(f"the server stopped serving: {exc}")
            else:
                assert listed.structured_content == {"jobs": [], "count": 0}
        return problems

    problems = anyio.run(scenario)
    assert problems == [], "\n".join(problems)
    assert row_counts(engine) == before


def test_a_symlinked_root_is_resolved_and_judged_where_it_points(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    for directory in (allowed / "real", outside):
        directory.mkdir(parents=True)
        (directory / "m.py").write_text("def f():\n    return 1\n")
    (allowed / "to_real").symlink_to(allowed / "real")
    (allowed / "to_outside").symlink_to(outside)

    # Without allowed roots a symlinked root is indexed under the path it resolves to.
    started = service().start_indexing(str(allowed / "to_real"), project_id="links")
    job = service().get_status(started["job_id"])
    assert job["repo_path"] == str((allowed / "real").resolve())
    service().cancel_job(started["job_id"])

    monkeypatch.setenv("CODEBASE_ALLOWED_ROOTS", str(allowed))
    svc = service()
    before = row_counts(svc.engine)
    with pytest.raises(InvalidRepositoryPath, match="outside the allowed roots"):
        svc.start_indexing(str(allowed / "to_outside"), project_id="links")
    with pytest.raises(InvalidRepositoryPath, match="outside the allowed roots"):
        svc.start_indexing(str(outside), project_id="links")
    with pytest.raises(InvalidRepositoryPath, match=r"'\.\.'"):
        svc.start_indexing(str(allowed) + "/../outside", project_id="links")
    assert row_counts(svc.engine) == before
    inside = svc.start_indexing(str(allowed / "to_real"), project_id="links")
    svc.cancel_job(inside["job_id"])


def test_an_unreadable_root_is_refused(settings: Any, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    engine = service().engine
    before = row_counts(engine)
    # The command line, in a child that cannot read past file modes (CI runs the tests as root).
    code = f"from mcp_server.frontends.cli import main; raise SystemExit(main(['index', {str(locked)!r}]))"
    try:
        result = unprivileged.run_python(code)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not readable" in " ".join((result.stdout + result.stderr).split())  # rich wraps lines
    assert row_counts(engine) == before


def test_a_path_that_is_not_utf8_is_refused_on_the_command_line(settings: Any, tmp_path: Path) -> None:
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(odd)
    before = row_counts(settings_engine := service().engine)
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server.frontends.cli", "index", odd],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert b"not valid UTF-8" in result.stdout + result.stderr
    assert row_counts(settings_engine) == before
