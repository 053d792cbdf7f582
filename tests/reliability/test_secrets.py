"""Security 13: secrets never appear in output, logs, job rows or tool errors.

The database password (in DATABASE_URL) and the embedding API key (EMBEDDING_API_KEY, and a
password in EMBEDDING_URL's user info) are set to recognisable strings; then every place a
person or a client can read is searched for them: CLI stdout and stderr (at DEBUG), the job
row's error message, the supervisor and indexer logs and reason files, the MCP server's stderr,
and MCP tool errors.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from fake_embedding_server import FakeEmbeddingServer
from fastmcp import Client
from fastmcp.exceptions import ToolError
from reliability.support import TERMINAL, service, stdio_transport, wait_for_status, write_repo
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mcp_server.core.settings import Settings
from mcp_server.db.database import database_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DB_PASSWORD = "dbpass-Zq81xVw"
API_KEY = "sk-apikey-Hk27pLm"
URL_PASSWORD = "urlpass-Wd55rTy"
SECRETS = (DB_PASSWORD, API_KEY, URL_PASSWORD)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _leaks(where: str, text_: str | bytes | None) -> list[str]:
    if text_ is None:
        return []
    value = text_.decode("utf-8", "replace") if isinstance(text_, bytes) else text_
    return [f"{secret} in {where}" for secret in (*SECRETS, *_EXTRA_SECRETS) if secret in value]


_EXTRA_SECRETS: list[str] = []  # the embedded database's real password, once a test has read it


def _cli(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server.frontends.cli", "--log-level", "DEBUG", *args],
        capture_output=True,
        env={**os.environ, "CODEBASE_MCP_LOG_LEVEL": "DEBUG", **env},
        timeout=timeout,
        check=False,
    )


def test_an_unreachable_database_is_reported_without_its_password(settings: Settings, tmp_path: Path) -> None:
    url = f"postgresql://indexer:{DB_PASSWORD}@127.0.0.1:{_closed_port()}/codebase"
    env = {"DATABASE_URL": url}
    repo = write_repo(tmp_path / "repo", {"a.py": "def a():\n    return 1\n"})
    leaks: list[str] = []
    for args in (["jobs"], ["index", str(repo)], ["search", "anything"], ["serve"], ["db", "current"]):
        result = _cli(*args, env=env)
        output = (result.stdout + result.stderr).decode()
        leaks += _leaks(f"`{' '.join(args)}` output", output)
        if args == ["serve"]:
            # stdio answers `initialize` before it reaches the database: it starts, may log why
            # the database is away (from a background thread), and ends with its client (no
            # stdin here); what it prints is checked for leaks only.
            continue
        assert result.returncode != 0, args
        assert "cannot connect to PostgreSQL" in output and "***" in output, (args, output[-500:])
    assert leaks == []


@pytest.fixture
def secret_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The embedded database reached through a DATABASE_URL that carries its password (the real
    one, read from its passfile: the embedded server checks passwords), and an HTTP embedder whose
    key and URL carry secrets. The real password joins the secrets searched for."""
    url_object = make_url(database_url(settings))
    passfile = Path(str(url_object.query["passfile"]))
    password = passfile.read_text().strip().splitlines()[-1].rsplit(":", 1)[1]
    url_object = url_object.set(
        password=password, query={k: v for k, v in url_object.query.items() if k != "passfile"}
    )
    url = url_object.render_as_string(hide_password=False)
    _EXTRA_SECRETS[:] = [password]
    env = {
        "DATABASE_URL": url,
        "EMBEDDING_BACKEND": "openai",
        "EMBEDDING_MODEL": "text-embedding-3-small",
        "EMBEDDING_DIMENSION": "32",
        "EMBEDDING_API_KEY": API_KEY,
        "EMBEDDING_URL": f"http://embed:{URL_PASSWORD}@127.0.0.1:{_closed_port()}/v1",
        "EMBEDDING_TIMEOUT_SECONDS": "2",
        "CODEBASE_MCP_LOG_LEVEL": "DEBUG",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _job_rows_and_run_files(settings: Settings, engine: Any) -> list[str]:
    leaks = []
    with engine.connect() as conn:
        for row in conn.execute(text("SELECT id, error_message, progress_message FROM indexing_jobs")):
            leaks += _leaks(f"job {row.id} error_message", row.error_message)
            leaks += _leaks(f"job {row.id} progress_message", row.progress_message)
    for path in settings.database.runs_dir.glob("*"):
        leaks += _leaks(str(path.name), path.read_bytes())
    return leaks


def test_a_failing_run_and_its_tool_errors_never_show_the_password_or_the_key(
    settings: Settings, engine: Any, secret_environment: dict[str, str], tmp_path: Path
) -> None:
    repo = write_repo(tmp_path / "repo", {"a.py": "def alpha():\n    return 1\n"})
    leaks: list[str] = []

    result = _cli("index", str(repo), "--project", "secret-cli", "--wait", env=secret_environment)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output[-1000:]
    assert "failed" in output and "cannot reach" in output, output[-1000:]
    leaks += _leaks("`index --wait` output", output)

    server_log = tmp_path / "server.log"

    async def over_mcp() -> list[str]:
        found = []
        async with Client(stdio_transport(log_file=server_log)) as client:
            started = await client.call_tool(
                "start_indexing_background", {"repo_path": str(repo), "project_id": "secret-mcp"}
            )
            job_id = (started.structured_content or {})["job_id"]
            with anyio.fail_after(60):
                while True:
                    status = (
                        await client.call_tool("get_indexing_status", {"job_id": job_id})
                    ).structured_content
                    assert status is not None
                    if status["status"] in TERMINAL:
                        break
                    await anyio.sleep(0.2)
            assert status["status"] == "failed"
            found += _leaks("get_indexing_status", str(status))
            for mode in ("hybrid", "semantic", "lexical"):
                try:
                    answer = await client.call_tool(
                        "search_code", {"query": "alpha", "project_id": "secret-mcp", "mode": mode}
                    )
                    found += _leaks(f"search_code {mode}", str(answer))
                except ToolError as exc:
                    found += _leaks(f"search_code {mode} error", str(exc))
            for tool, args in (
                ("list_indexing_jobs", {}),
                ("start_indexing_background", {"repo_path": "/no/such"}),
                ("cancel_indexing_job", {"job_id": job_id}),
            ):
                try:
                    found += _leaks(tool, str(await client.call_tool(tool, args)))
                except ToolError as exc:
                    found += _leaks(f"{tool} error", str(exc))
        return found

    leaks += anyio.run(over_mcp)
    leaks += _leaks("the MCP server's stderr", server_log.read_bytes())
    leaks += _job_rows_and_run_files(settings, engine)
    failed = service().list_jobs(status="failed")["jobs"]
    assert len(failed) == 2 and all("cannot reach http://127.0.0.1" in j["error_message"] for j in failed), (
        failed
    )
    print(f"\nsecurity 13: failure reason as stored: {failed[0]['error_message']}")
    assert leaks == []


def test_an_embedding_url_with_credentials_stays_out_of_the_logs_of_a_working_run(
    settings: Settings,
    engine: Any,
    secret_environment: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A successful run logs its HTTP requests at DEBUG: the URL's user info must not be there."""
    with FakeEmbeddingServer() as server:
        port = server.url.rsplit(":", 1)[1]
        env = {
            **secret_environment,
            "EMBEDDING_BACKEND": "ollama",
            "EMBEDDING_URL": f"http://embed:{URL_PASSWORD}@127.0.0.1:{port}",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        repo = write_repo(tmp_path / "repo", {"a.py": "def alpha():\n    return 1\n"})
        result = _cli("index", str(repo), "--project", "secret-ok", "--wait", env=env)
        output = (result.stdout + result.stderr).decode()
        assert result.returncode == 0, output[-1000:]
        leaks = _leaks("`index --wait` output", output) + _job_rows_and_run_files(settings, engine)
        job = service().list_jobs(project_id="secret-ok")["jobs"][0]
        assert wait_for_status(service(), job["job_id"], TERMINAL)["status"] == "completed"
    assert leaks == []
