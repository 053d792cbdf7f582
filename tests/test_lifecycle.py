"""The job lifecycle both runners share (mcp_server.core.lifecycle), tested once here; the local
launcher and the operator test only how they map onto it."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_server.core import lifecycle
from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.core.lifecycle import Outcome
from mcp_server.indexer.outcome import IndexerExit, describe_exit, failure_reason


@pytest.fixture
def store(clean_db: Any) -> JobStore:
    return JobStore(clean_db)


# (pending as (project, repo) oldest first, active as (project, repo), free) -> admitted indexes
ADMISSION = {
    "oldest first, up to the free slots": ([("p", "a"), ("p", "b"), ("p", "c")], [], 2, [0, 1]),
    "no free slot": ([("p", "a")], [], 0, []),
    "an active job holds its repository": ([("p", "a"), ("p", "b")], [("p", "a")], 2, [1]),
    "the same repository twice in the queue: the older": (
        [("p", "a"), ("p", "a"), ("p", "b")],
        [],
        3,
        [0, 2],
    ),
    "the same path in another project is another repository": (
        [("p", "a"), ("q", "a")],
        [("p", "a")],
        2,
        [1],
    ),
    "a waiting repository does not use up a slot": ([("p", "a"), ("p", "b")], [("p", "a")], 1, [1]),
}


@pytest.mark.parametrize("case", list(ADMISSION))
def test_admission(store: JobStore, case: str) -> None:
    pending_keys, active_keys, free, expected = ADMISSION[case]
    pending = [store.create(repo_path=repo, project_id=project) for project, repo in pending_keys]
    active = [store.create(repo_path=repo, project_id=project) for project, repo in active_keys]
    chosen = lifecycle.admissible(pending, active=active, free=free)
    assert [pending.index(job) for job in chosen] == expected
    for job in pending:
        blocker = lifecycle.blocking_job(job, active)
        assert (blocker is not None) == ((job.project_id, job.repo_path) in set(active_keys))


def test_an_outcome_is_terminal() -> None:
    with pytest.raises(ValueError):
        Outcome(JobStatus.RUNNING)


def test_record_applies_once_and_tells_the_runner_once(store: JobStore) -> None:
    seen: list[Outcome] = []
    job = store.create(repo_path="/r", project_id="p")
    assert lifecycle.record(store, job.id, Outcome.completed(), on_recorded=seen.append)  # pending -> done
    assert not lifecycle.record(store, job.id, Outcome.failed("late"), on_recorded=seen.append)
    assert store.get(job.id).status is JobStatus.COMPLETED and seen == [Outcome.completed()]


EXITS = {
    0: "the indexer finished (exit code 0)",
    1: "the indexer failed (exit code 1)",
    2: "the indexer refused its input (exit code 2)",
    -9: "the indexer was killed by SIGKILL (out of memory?)",
    137: "the indexer exited with code 137 (killed by SIGKILL (out of memory?))",
    42: "the indexer exited with code 42",
}


@pytest.mark.parametrize("code", list(EXITS))
def test_one_set_of_words_for_an_exit_in_both_runners(code: int) -> None:
    expected = EXITS[code]
    if code == 0:
        assert IndexerExit(0).meaning == expected
    else:
        assert describe_exit(code) == expected
    assert failure_reason(code, "why") == f"{describe_exit(code)}: why"
    assert "OOMKilled" in describe_exit(137, "OOMKilled")
