"""Fault 2: the indexer process killed mid-run (SIGKILL, or an OOM-like exit 137).

What the product promises: the job ends `failed` with a reason; nothing the killed run wrote is
ever visible to search (the previous generation stays searchable); a retry succeeds and reuses
the files the killed attempt already wrote at the pending generation (same content hash).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from fake_embedding_server import FakeEmbeddingServer
from reliability.support import (
    TERMINAL,
    indexer_process,
    lexical_hits,
    many_functions,
    runner_pid,
    service,
    wait_for,
    wait_for_status,
    write_repo,
)
from sqlalchemy import text

from mcp_server.core.settings import load_settings
from mcp_server.index.store import IndexStore
from mcp_server.index.vector_indexes import VectorIndexes
from mcp_server.indexer.outcome import describe_exit
from mcp_server.runners import supervisor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# 120 files x 20 functions = 2,400 chunks: three embedding batches of up to 1,024 chunks, so a
# slow embedder lets the first batch reach the database before the kill.
FILES, FUNCTIONS = 120, 20


def _pending_rows(engine: Any, project: str) -> int:
    """File rows written at a generation that is not published yet (invisible to search)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM files f JOIN repositories r ON r.id = f.repository_id "
                    "WHERE r.project_id = :p AND f.gen_from > r.active_generation"
                ),
                {"p": project},
            ).scalar_one()
        )


def test_a_killed_indexer_fails_the_job_hides_its_rows_and_the_retry_reuses_them(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODEBASE_CHUNK_PACK_LINES", "0")
    svc = service()
    repo = write_repo(tmp_path / "repo", many_functions("versionone", files=FILES, functions=FUNCTIONS))
    first = svc.start_indexing(str(repo), project_id="killed")["job_id"]
    v1 = wait_for_status(svc, first, TERMINAL)
    assert v1["status"] == "completed", v1
    total_chunks = v1["chunks_created"]
    assert total_chunks == FILES * FUNCTIONS

    write_repo(repo, many_functions("versiontwo", files=FILES, functions=FUNCTIONS))
    slow_embedder.delay_seconds = 0.15  # 16 requests of 64 texts per batch: ~2.5 s a batch
    second = svc.start_indexing(str(repo), project_id="killed")["job_id"]
    wait_for_status(svc, second, {"running"})
    indexer = indexer_process(runner_pid(svc, second))
    # Kill once at least one batch is durable at the pending generation.
    wait_for(lambda: _pending_rows(svc.engine, "killed") > 0, timeout=60, what="a first batch written")
    assert not lexical_hits(svc, "versiontwo", "killed"), "unpublished rows must stay invisible"
    workers = indexer.children(recursive=True)
    indexer.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()

    failed = wait_for_status(svc, second, TERMINAL, timeout=30)
    recovery = time.monotonic() - killed_at
    assert failed["status"] == "failed"
    assert "SIGKILL" in failed["error_message"], failed["error_message"]
    assert recovery < 5, f"the supervisor took {recovery:.1f} s to notice"
    print(f"\nfault 2: SIGKILL -> job failed in {recovery:.2f} s")
    # The parser pool and the forkserver do not outlive the indexer.
    wait_for(
        lambda: not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
        timeout=10,
        what="the indexer's worker processes to exit",
    )

    written_by_killed_run = _pending_rows(svc.engine, "killed")
    assert written_by_killed_run > 0
    hits = lexical_hits(svc, "versionone", "killed")
    assert hits and all("versionone" in h["content"] for h in hits)
    assert not lexical_hits(svc, "versiontwo", "killed")
    assert _has_vector_index(svc, "killed")

    slow_embedder.delay_seconds = 0
    retried_at = time.monotonic()
    retry = svc.start_indexing(str(repo), project_id="killed")["job_id"]
    done = wait_for_status(svc, retry, TERMINAL)
    print(
        f"fault 2: retry completed in {time.monotonic() - retried_at:.2f} s, writing "
        f"{done['chunks_created']} of {total_chunks} chunks ({written_by_killed_run} files reused)"
    )
    assert done["status"] == "completed", done
    assert done["files_indexed"] == FILES
    # Only the files the killed run did not finish were chunked and embedded again.
    assert done["chunks_created"] == total_chunks - written_by_killed_run * FUNCTIONS
    assert done["chunks_created"] < total_chunks
    assert not lexical_hits(svc, "versionone", "killed")
    with svc.engine.connect() as conn:
        live = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT c.path) FROM chunks c JOIN repositories r "
                "ON r.id = c.repository_id WHERE r.project_id = 'killed' "
                "AND c.gen_from <= r.active_generation AND c.gen_to > r.active_generation"
            )
        ).one()
    assert tuple(live) == (total_chunks, FILES), "exactly one version of every chunk is live"
    assert _pending_rows(svc.engine, "killed") == 0


def _has_vector_index(svc: Any, project: str) -> bool:
    model = IndexStore(svc.engine).project_model(project)
    assert model is not None
    return VectorIndexes(svc.engine).exists(project, model[1])


def test_a_first_index_killed_mid_run_gets_its_vector_index_back(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, tmp_path: Path
) -> None:
    """A first (bulk) index drops the project's HNSW index and builds it at the end; a SIGKILL
    skips that, so the supervisor must restore it, or the project stays on exact scans."""
    monkeypatch.setenv("CODEBASE_CHUNK_PACK_LINES", "0")
    svc = service()
    repo = write_repo(tmp_path / "repo", many_functions("bulkload", files=FILES, functions=FUNCTIONS))
    slow_embedder.delay_seconds = 0.15
    job = svc.start_indexing(str(repo), project_id="bulk")["job_id"]
    wait_for_status(svc, job, {"running"})
    indexer = indexer_process(runner_pid(svc, job))
    wait_for(lambda: _pending_rows(svc.engine, "bulk") > 0, timeout=60, what="a first batch written")
    indexer.send_signal(signal.SIGKILL)
    assert wait_for_status(svc, job, TERMINAL, timeout=30)["status"] == "failed"
    assert svc.search("bulkload", project_id="bulk")["results"] == []
    wait_for(lambda: _has_vector_index(svc, "bulk"), timeout=10, what="the HNSW index restored")


def test_an_indexer_that_exits_137_is_reported_as_killed(
    slow_embedder: FakeEmbeddingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit status 137 is how a shell or a container runtime reports a child killed by SIGKILL
    (the OOM killer). The indexer runs here under `sh`, as in a container whose entrypoint is a
    shell script; the supervisor runs in this process so that it starts `sh`, not Python."""
    svc = service()
    repo = write_repo(tmp_path / "repo", many_functions("oomlike", files=20, functions=5))
    wrapper = tmp_path / "python-under-sh"
    wrapper.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    slow_embedder.delay_seconds = 60
    job = svc.jobs.create(repo_path=str(repo.resolve()), project_id="oom")
    assert svc.jobs.mark_running(job.id)
    python = sys.executable
    monkeypatch.setattr(sys, "executable", str(wrapper))
    thread = threading.Thread(target=supervisor.supervise, args=(load_settings(), job.id), daemon=True)
    thread.start()

    def python_grandchild() -> psutil.Process | None:
        for proc in psutil.Process().children(recursive=True):
            try:
                cmdline, parent = proc.cmdline(), proc.parent()
                parent_cmdline = parent.cmdline() if parent else []
            except psutil.NoSuchProcess:
                continue
            if "indexer" in cmdline and cmdline[0] == python and parent_cmdline[:1] == ["/bin/sh"]:
                return proc
        return None

    indexer = wait_for(python_grandchild, timeout=30, what="the indexer under sh")
    wait_for(lambda: svc.jobs.get(job.id).phase not in (None, "starting"), timeout=30)
    indexer.send_signal(signal.SIGKILL)
    thread.join(30)
    assert not thread.is_alive()
    final = svc.get_status(str(job.id))
    assert final["status"] == "failed"
    assert "137" in final["error_message"]
    assert "SIGKILL" in final["error_message"] and "out of memory" in final["error_message"]


def test_exit_statuses_read_as_a_person_would_say_them() -> None:
    assert describe_exit(-9) == "the indexer was killed by SIGKILL (out of memory?)"
    assert "SIGKILL" in describe_exit(137) and "out of memory" in describe_exit(137)
    assert "SIGTERM" in describe_exit(143)
    assert describe_exit(1) == "the indexer failed (exit code 1)"
    assert describe_exit(9) == "the indexer exited with code 9"


def test_the_job_row_never_claims_running_after_the_indexer_is_gone(
    slow_embedder: FakeEmbeddingServer, tmp_path: Path
) -> None:
    """Kill the indexer and its supervisor together (a machine's process group dies): the next
    codebase-mcp process that touches the queue fails the job with a reason."""
    svc = service()
    repo = write_repo(tmp_path / "repo", many_functions("both", files=5, functions=3))
    slow_embedder.delay_seconds = 60
    job = svc.start_indexing(str(repo), project_id="both")["job_id"]
    wait_for_status(svc, job, {"running"})
    supervisor_pid = runner_pid(svc, job)
    indexer = indexer_process(supervisor_pid)
    psutil.Process(supervisor_pid).send_signal(signal.SIGKILL)
    indexer.send_signal(signal.SIGKILL)
    wait_for(
        lambda: not psutil.pid_exists(indexer.pid) or indexer.status() == psutil.STATUS_ZOMBIE, timeout=10
    )
    began = time.monotonic()
    service().reconcile()
    final = svc.get_status(job)
    assert final["status"] == "failed" and "died" in final["error_message"]
    assert time.monotonic() - began < 5
    assert uuid.UUID(job)
