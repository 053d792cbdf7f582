"""Helpers shared by the reliability tests: waiting, processes, row counts, repositories."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
from fastmcp.client.transports import StdioTransport
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.settings import load_settings
from mcp_server.frontends.operations import CodebaseService

T = TypeVar("T")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
TABLES = ("indexing_jobs", "projects", "repositories", "files", "chunks")


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll until `predicate` returns something truthy; return it, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def service() -> CodebaseService:
    """A service built from the current environment (tests change it with monkeypatch)."""
    return CodebaseService(load_settings())


def wait_for_status(
    svc: CodebaseService, job_id: str, statuses: set[str] | frozenset[str], timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = svc.get_status(job_id)
        return status if status["status"] in statuses else None

    return wait_for(reached, timeout=timeout, what=f"job {job_id} to reach {sorted(statuses)}")


def runner_pid(svc: CodebaseService, job_id: str) -> int:
    runner = svc.jobs.get(uuid.UUID(job_id)).runner
    assert runner is not None, "a running local job records its supervisor"
    return int(runner.split(":")[1])


def indexer_process(supervisor_pid: int, timeout: float = 30) -> psutil.Process:
    """The `codebase-mcp indexer run` child of a supervisor."""

    def find() -> psutil.Process | None:
        try:
            children = psutil.Process(supervisor_pid).children()
        except psutil.NoSuchProcess:
            return None
        for child in children:
            try:
                if "indexer" in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    return wait_for(find, timeout=timeout, what=f"the indexer child of {supervisor_pid}")


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def stdio_transport(env: dict[str, str] | None = None, log_file: Path | None = None) -> StdioTransport:
    return StdioTransport(
        command=sys.executable,
        args=["-m", "mcp_server.frontends.cli", "serve"],
        env={**os.environ, **(env or {})},
        keep_alive=False,
        log_file=log_file,
    )


def serve_processes() -> list[psutil.Process]:
    """`codebase-mcp serve` processes started by this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "mcp_server.frontends.cli" in cmdline and "serve" in cmdline:
            found.append(child)
    return found


def write_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    root.mkdir(parents=True, exist_ok=True)
    return root


def many_functions(marker: str, *, files: int, functions: int, prefix: str = "mod") -> dict[str, str]:
    """A repository of `files` Python modules with `functions` small functions each; every
    function body carries `marker`, so a lexical search tells which version is visible."""
    repo = {}
    for f in range(files):
        body = "\n\n".join(
            f'def {prefix}{f}_fn{i}(value):\n    """{marker} helper {i}."""\n    return value + {i}\n'
            for i in range(functions)
        )
        repo[f"pkg/{prefix}_{f:04d}.py"] = body
    return repo


def lexical_hits(svc: CodebaseService, query: str, project: str, limit: int = 100) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = svc.search(query, project_id=project, mode="lexical", limit=limit)[
        "results"
    ]
    return results


def run_logs(job_id: str, tail: int = 30) -> str:
    """The last lines of a local job's supervisor and indexer logs, for failure messages."""
    runs = load_settings().database.runs_dir
    parts = []
    for kind in ("supervisor", "indexer"):
        path = runs / f"{job_id}.{kind}.log"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        lines = [line for line in lines if "HTTP Request" not in line and "alembic" not in line]
        parts.append(f"--- {path.name}\n" + "\n".join(lines[-tail:]))
    return "\n".join(parts)


def start_at(wall_time: float, repo_path: str, project_id: str) -> str:
    """Start indexing at a given wall-clock time (for several processes racing each other)."""
    svc = service()
    svc.engine  # noqa: B018 - connect before the race, not during it
    time.sleep(max(0.0, wall_time - time.time()))
    job_id: str = svc.start_indexing(repo_path, project_id=project_id)["job_id"]
    return job_id
