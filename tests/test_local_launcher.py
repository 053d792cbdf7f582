"""The local launcher: concurrency limit, creation order, timeout, cancel, dead runners.

Indexing is slowed down through the real HTTP embedding backend pointed at a local server that
answers late (tests/fake_embedding_server.py), so no test hook lives in the product code.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_embedding_server import FakeEmbeddingServer

from mcp_server.core.jobs import JobStatus
from mcp_server.core.settings import load_settings
from mcp_server.frontends.operations import CodebaseService

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def slow_embedder(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer() as server:
        monkeypatch.setenv("EMBEDDING_BACKEND", "ollama")
        monkeypatch.setenv("EMBEDDING_URL", server.url)
        monkeypatch.setenv("EMBEDDING_MODEL", "fake-embed")
        monkeypatch.setenv("EMBEDDING_DIMENSION", "32")
        yield server


def _service() -> CodebaseService:
    return CodebaseService(load_settings())


def _wait(svc: CodebaseService, job_id: str, statuses: set[str], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = svc.get_status(job_id)
        if status["status"] in statuses:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}: {svc.get_status(job_id)}")


def _process_gone(pid: int) -> bool:
    """Exited (reaped, or a zombie waiting for a parent that is not us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _process_gone(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still runs after {timeout} s")
        time.sleep(0.05)


def _supervisor_pid(svc: CodebaseService, job_id: str) -> int:
    runner = svc.jobs.get(uuid.UUID(job_id)).runner
    assert runner is not None
    return int(runner.split(":")[1])


def _repo(make_repo: Any, name: str, text: str = "def handler():\n    return 'ok'\n") -> Path:
    path: Path = make_repo({"app.py": text, "lib/util.py": "def helper(x):\n    return x * 2\n"}, name=name)
    return path


def test_at_most_the_limit_run_and_the_rest_start_in_creation_order(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, make_repo: Any
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_INDEXING_JOBS", "2")
    slow_embedder.delay_seconds = 1.0
    svc = _service()
    job_ids = [
        svc.start_indexing(str(_repo(make_repo, f"r{i}")), project_id="limit")["job_id"] for i in range(5)
    ]
    max_running = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = [svc.get_status(j)["status"] for j in job_ids]
        max_running = max(max_running, statuses.count("running"))
        if all(s in TERMINAL for s in statuses):
            break
        time.sleep(0.05)
    finals = [svc.get_status(j) for j in job_ids]
    assert [f["status"] for f in finals] == ["completed"] * 5, finals
    assert max_running == 2
    started = [f["started_at"] for f in finals]
    assert started == sorted(started), "jobs must start in creation order"


def test_a_job_past_its_timeout_is_killed_and_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, make_repo: Any
) -> None:
    monkeypatch.setenv("INDEXING_JOB_TIMEOUT_SECONDS", "3")
    slow_embedder.delay_seconds = 60
    svc = _service()
    job_id = svc.start_indexing(str(_repo(make_repo, "slow")), project_id="timeout")["job_id"]
    final = _wait(svc, job_id, TERMINAL, timeout=60)
    assert final["status"] == "failed"
    assert "timed out after 3 s" in final["error_message"]


def test_cancel_stops_the_indexer_and_keeps_the_previous_index_searchable(
    slow_embedder: FakeEmbeddingServer, make_repo: Any
) -> None:
    svc = _service()
    repo = _repo(make_repo, "cancel", text="def original_function_name():\n    return 1\n")
    first = svc.start_indexing(str(repo), project_id="cancel")["job_id"]
    assert _wait(svc, first, TERMINAL)["status"] == "completed"

    (repo / "app.py").write_text("def replacement_function_name():\n    return 2\n")
    slow_embedder.delay_seconds = 60
    second = svc.start_indexing(str(repo), project_id="cancel")["job_id"]
    _wait(svc, second, {"running"})
    deadline = time.monotonic() + 60
    while svc.get_status(second)["phase"] != "embedding":  # the indexer is busy in the slow embedder
        assert time.monotonic() < deadline, svc.get_status(second)
        time.sleep(0.05)
    supervisor = _supervisor_pid(svc, second)
    result = svc.cancel_job(second)
    assert result["cancelled"] and result["status"] == "cancelled"
    slow_embedder.delay_seconds = 0
    hits = svc.search("original_function_name", project_id="cancel", mode="lexical")["results"]
    assert any("original_function_name" in h["content"] for h in hits)
    hits = svc.search("replacement_function_name", project_id="cancel", mode="lexical")["results"]
    assert not any("replacement_function_name" in h["content"] for h in hits)
    # The supervisor notices, kills the indexer (and its workers) and exits.
    _wait_gone(supervisor)
    assert svc.get_status(second)["status"] == "cancelled"


def test_a_pending_job_can_be_cancelled_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, make_repo: Any
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_INDEXING_JOBS", "1")
    slow_embedder.delay_seconds = 60
    svc = _service()
    busy = svc.start_indexing(str(_repo(make_repo, "busy")), project_id="pend")["job_id"]
    queued = svc.start_indexing(str(_repo(make_repo, "queued")), project_id="pend")["job_id"]
    _wait(svc, busy, {"running"})
    assert svc.get_status(queued)["status"] == "pending"
    assert svc.cancel_job(queued)["status"] == "cancelled"
    assert svc.cancel_job(busy)["status"] == "cancelled"


def test_a_job_whose_supervisor_died_is_failed_not_left_running(
    slow_embedder: FakeEmbeddingServer, make_repo: Any
) -> None:
    slow_embedder.delay_seconds = 60
    svc = _service()
    job_id = svc.start_indexing(str(_repo(make_repo, "dies")), project_id="dead")["job_id"]
    _wait(svc, job_id, {"running"})
    pid = _supervisor_pid(svc, job_id)
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    svc.reconcile()  # what any server, CLI or supervisor does when it touches the queue
    final = svc.get_status(job_id)
    assert final["status"] == "failed"
    assert "died" in final["error_message"]


def test_a_second_start_for_the_same_repository_returns_the_active_job(
    slow_embedder: FakeEmbeddingServer, make_repo: Any
) -> None:
    slow_embedder.delay_seconds = 60
    svc = _service()
    repo = _repo(make_repo, "twice")
    first = svc.start_indexing(str(repo), project_id="twice")
    second = svc.start_indexing(str(repo), project_id="twice")
    assert second["job_id"] == first["job_id"]
    assert "already being indexed" in second["message"]
    svc.cancel_job(first["job_id"])
    assert svc.jobs.get(uuid.UUID(first["job_id"])).status is JobStatus.CANCELLED
