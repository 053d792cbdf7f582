"""Issue 12, item 12: the smaller ones.

Before: a cancel that landed after publish said "the previous index stays searchable" although
the new one was live; `force_reindex=true` was silently dropped when the call joined a running job;
a bad bracket glob in `path` was "internal error", `**/` repeated 333 times cost seconds of
database time and no search had a statement timeout; job logs were world-readable.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from indexing import index_run
from reliability.support import TERMINAL, lexical_hits, service, wait_for_status, write_repo
from sqlalchemy import text

from mcp_server.core.errors import InvalidInput, SearchTimeout
from mcp_server.index.search import Searcher
from mcp_server.indexer.pipeline import IndexRun, RunCancelled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _indexed(tmp_path: Path, marker: str, project: str) -> tuple[Any, Path]:
    repo = write_repo(tmp_path / "repo", {"a.py": f"def a():\n    return '{marker}'\n"})
    svc = service()
    final = wait_for_status(svc, svc.start_indexing(str(repo), project_id=project)["job_id"], TERMINAL)
    assert final["status"] == "completed", final["error_message"]
    return svc, repo


def _run_by_hand(svc: Any, repo: Path, project: str) -> tuple[Any, IndexRun]:
    """A job row in `running` and an index run for it in this process (no supervisor)."""
    job = svc.jobs.create(repo_path=str(repo), project_id=project)
    assert svc.jobs.mark_running(job.id)
    run = index_run(svc.engine, repo, svc.embedder, project_id=project, max_file_bytes=100_000, job_id=job.id)
    return job, run


def test_a_cancel_after_publish_says_the_new_index_is_live(settings: Any, tmp_path: Path) -> None:
    svc, repo = _indexed(tmp_path, "firstversion", "late-cancel")
    write_repo(repo, {"a.py": "def a():\n    return 'secondversion'\n"})
    job, run = _run_by_hand(svc, repo, "late-cancel")
    run.run()  # published; the job row is still `running` until its runner records the exit
    answer = svc.cancel_job(str(job.id))
    assert answer["cancelled"] and answer["new_index_published"] is True
    assert "new index" in answer["message"] and "live" in answer["message"], answer["message"]
    assert lexical_hits(svc, "secondversion", "late-cancel")


def test_a_cancel_before_publish_stops_the_publish(settings: Any, tmp_path: Path) -> None:
    svc, repo = _indexed(tmp_path, "firstversion", "early-cancel")
    write_repo(repo, {"a.py": "def a():\n    return 'secondversion'\n"})
    job, run = _run_by_hand(svc, repo, "early-cancel")
    answer = svc.cancel_job(str(job.id))
    assert answer["cancelled"] and answer["new_index_published"] is False
    assert "previous index" in answer["message"]
    with pytest.raises(RunCancelled):
        run.run()
    assert lexical_hits(svc, "firstversion", "early-cancel")
    assert not lexical_hits(svc, "secondversion", "early-cancel")


def test_force_reindex_joining_a_running_job_says_it_was_not_applied(settings: Any, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"a.py": "x = 1\n"})
    svc = service()
    running = svc.jobs.create(repo_path=str(repo.resolve()), project_id="joined")
    assert svc.jobs.mark_running(running.id)
    answer = svc.start_indexing(str(repo), project_id="joined", force_reindex=True)
    assert answer["job_id"] == str(running.id)
    assert answer["joined_existing_job"] is True and answer["force_reindex_applied"] is False
    assert "force_reindex was NOT applied" in answer["message"]
    svc.cancel_job(str(running.id))


@pytest.mark.parametrize(
    "path",
    ["tests/[z-a]*.py", "[]x", "**/" * 300 + "x.py", "*" * 40, "[a][b][c][d][e][f][g][h][i]"],
)
def test_malformed_or_costly_globs_are_input_errors(settings: Any, tmp_path: Path, path: str) -> None:
    svc, _ = _indexed(tmp_path, "globmarker", "globs")
    began = time.monotonic()
    with pytest.raises(InvalidInput, match="path glob"):
        svc.search("globmarker", project_id="globs", path=path)
    assert time.monotonic() - began < 1


def test_every_search_statement_has_a_timeout(settings: Any, tmp_path: Path) -> None:
    svc, _ = _indexed(tmp_path, "timeoutmarker", "timeout")
    searcher = Searcher(svc.engine, svc.embedder, statement_timeout_ms=300)
    assert searcher.search("timeoutmarker", project_id="timeout", mode="lexical").results
    # Another session holds the chunks table: without a statement timeout the search waits for ever.
    with svc.engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE"))
        began = time.monotonic()
        with pytest.raises(SearchTimeout, match="300 ms"):
            searcher.search("timeoutmarker", project_id="timeout", mode="lexical")
        assert time.monotonic() - began < 5
        blocker.rollback()


def test_job_logs_are_readable_by_their_owner_only(settings: Any, tmp_path: Path) -> None:
    _indexed(tmp_path, "logmarker", "logs")
    runs = settings.database.runs_dir
    assert stat.S_IMODE(os.stat(runs).st_mode) == 0o700
    logs = list(runs.glob("*.log"))
    assert logs and all(stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0 for p in logs)
