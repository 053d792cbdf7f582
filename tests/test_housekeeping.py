"""Housekeeping: deleting a repository or a project, pruning the job history, space per project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.errors import InvalidInput
from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.core.settings import Settings
from mcp_server.frontends.operations import CodebaseService
from mcp_server.runners.watch import RepositoryWatcher


def _index(service: CodebaseService, root: Path, project: str) -> None:
    RepositoryWatcher(
        settings=service.settings,
        engine=service.engine,
        embedder=service.embedder,
        root=root,
        project_id=project,
        check_seconds=3600,
    ).sync(None)


def _hits(service: CodebaseService, word: str, project: str) -> set[str]:
    results = service.search(word, project_id=project, mode="lexical")["results"]
    return {r["repository"] for r in results if word in r["content"]}


@pytest.fixture
def service(settings: Settings, clean_db: Engine) -> CodebaseService:
    return CodebaseService(settings, engine=clean_db)


def test_deleting_a_repository_removes_its_rows_and_keeps_the_others(
    service: CodebaseService, make_repo: Any
) -> None:
    one = make_repo({"a.py": "shared_marker = 1\n"}, name="one")
    two = make_repo({"b.py": "shared_marker = 2\n"}, name="two")
    _index(service, one, "hk")
    _index(service, two, "hk")
    assert _hits(service, "shared_marker", "hk") == {str(one), str(two)}
    assert service.delete_repository(str(one), "hk")["deleted"] is True
    assert _hits(service, "shared_marker", "hk") == {str(two)}
    with service.engine.connect() as conn:
        orphans = conn.execute(
            text("SELECT count(*) FROM chunks WHERE repository_id NOT IN (SELECT id FROM repositories)")
        ).scalar_one()
    assert orphans == 0
    assert one.exists() and (one / "a.py").exists(), "the files on disk are never touched"
    with pytest.raises(InvalidInput, match="no indexed repository"):
        service.delete_repository(str(one), "hk")


def test_a_repository_being_indexed_cannot_be_deleted(service: CodebaseService, make_repo: Any) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    _index(service, root, "hk")
    job = JobStore(service.engine).create(repo_path=str(root), project_id="hk")
    with pytest.raises(InvalidInput, match=f"job {job.id} is indexing"):
        service.delete_repository(str(root), "hk")
    JobStore(service.engine).cancel(job.id)
    assert service.delete_repository(str(root), "hk")["deleted"]


def test_deleting_a_project_removes_its_repositories_and_jobs_only(
    service: CodebaseService, make_repo: Any
) -> None:
    root = make_repo({"a.py": "project_marker = 1\n"})
    _index(service, root, "gone")
    _index(service, root, "kept")
    store = JobStore(service.engine)
    finished = store.create(repo_path=str(root), project_id="gone")
    store.cancel(finished.id)
    other = store.create(repo_path=str(root), project_id="kept")
    store.cancel(other.id)
    result = service.delete_project("gone")
    assert result == {"deleted": True, "project_id": "gone", "jobs_deleted": 1}
    assert _hits(service, "project_marker", "gone") == set()
    assert _hits(service, "project_marker", "kept") == {str(root)}
    assert store.get(other.id).status is JobStatus.CANCELLED
    with pytest.raises(InvalidInput, match="no project"):
        service.delete_project("gone")


def test_the_job_history_is_pruned_by_count_and_age_but_never_active_jobs(clean_db: Engine) -> None:
    store = JobStore(clean_db)
    finished = []
    for i in range(6):
        job = store.create(repo_path=f"/r{i}", project_id="p")
        store.cancel(job.id)
        finished.append(job.id)
    active = store.create(repo_path="/busy", project_id="p")
    with clean_db.begin() as conn:  # the two oldest finished a year ago
        conn.execute(
            text("UPDATE indexing_jobs SET completed_at = now() - interval '365 days' WHERE id = ANY(:ids)"),
            {"ids": finished[:2]},
        )
    assert store.prune(older_than_days=30, keep=100) == 2
    assert store.prune(older_than_days=30, keep=3) == 1  # the oldest of the four left
    remaining = {job.id for job in store.list(limit=50)}
    assert remaining == {*finished[3:], active.id}


def test_du_reports_rows_and_bytes_per_project(service: CodebaseService, make_repo: Any) -> None:
    _index(service, make_repo({"a.py": "def f():\n    return 1\n"}), "sized")
    (row,) = service.disk_usage()["projects"]
    assert row["project_id"] == "sized" and row["repositories"] == 1 and row["files"] == 1
    assert row["chunks"] >= 1 and int(row["chunk_bytes"]) > 0


def test_the_cli_asks_before_deleting_and_refuses_without_a_terminal(
    service: CodebaseService, make_repo: Any
) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    _index(service, root, "default")
    cli = [sys.executable, "-m", "mcp_server.frontends.cli"]
    refused = subprocess.run(
        [*cli, "repos", "rm", str(root)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert service.list_repositories()["count"] == 1
    done = subprocess.run(
        [*cli, "repos", "rm", str(root), "--yes"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert service.list_repositories()["count"] == 0
