"""How Job and pod states become job-row reasons and IndexingRequest status (pure functions)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from codebase_operator import reflection

from mcp_server.core.jobs import Job, JobStatus, ShardProgress

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(*conditions: tuple[str, str, str], deadline: int = 3600) -> dict[str, Any]:
    return {
        "metadata": {"name": "cbm-index-1", "labels": {"codebase-mcp.dev/job-id": str(uuid.UUID(int=1))}},
        "spec": {"activeDeadlineSeconds": deadline},
        "status": {
            "conditions": [{"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions]
        },
    }


def pod(
    phase: str = "Failed",
    *,
    exit_code: int | None = None,
    reason: str = "Error",
    message: str = "",
    waiting: str | None = None,
    created: datetime = NOW,
    scheduled: tuple[str, str] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if exit_code is not None:
        state = {
            "terminated": {"exitCode": exit_code, "reason": reason, "message": message, "finishedAt": ts(NOW)}
        }
    elif waiting is not None:
        state = {"waiting": {"reason": waiting, "message": f"{waiting} details"}}
    conditions = []
    if scheduled is not None:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": scheduled[0], "message": scheduled[1]}
        )
    return {
        "metadata": {"name": "cbm-index-1-abcde", "creationTimestamp": ts(created)},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": "indexer", "state": state}] if state else [],
        },
    }


@pytest.mark.parametrize(
    ("exit_code", "message", "expected"),
    [
        (
            1,
            "EmbeddingError: server unreachable",
            "the indexer failed (exit code 1): EmbeddingError: server unreachable",
        ),
        (
            2,
            "repo_path '/workspace/x' does not exist",
            "the indexer refused its input (exit code 2): repo_path",
        ),
        (3, "", "no longer runnable"),
    ],
)
def test_pod_failure_policy_failures_name_the_exit_code_and_the_indexers_message(
    exit_code: int, message: str, expected: str
) -> None:
    failed = job(("Failed", "PodFailurePolicy", "Container indexer for pod ... failed with exit code"))
    reason = reflection.failure_reason(failed, [pod(exit_code=exit_code, message=message)])
    assert expected in reason
    assert reason.endswith("(PodFailurePolicy)")


def test_deadline_exceeded_names_the_timeout() -> None:
    reason = reflection.failure_reason(
        job(("Failed", "DeadlineExceeded", "Job was active longer"), deadline=90)
    )
    assert "timeout of 90 s" in reason and "DeadlineExceeded" in reason


def test_a_killed_container_is_reported_as_out_of_memory_with_backoff_limit_exceeded() -> None:
    reason = reflection.failure_reason(
        job(("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
        [pod(exit_code=137, reason="OOMKilled")],
    )
    assert "OOMKilled" in reason and "137" in reason and reason.endswith("(BackoffLimitExceeded)")


def test_without_pods_the_job_condition_message_is_the_reason() -> None:
    reason = reflection.failure_reason(job(("Failed", "BackoffLimitExceeded", "backoff limit reached")), [])
    assert reason == "the indexing Job failed (BackoffLimitExceeded): backoff limit reached"


def test_the_latest_failed_pod_is_the_one_reported() -> None:
    older = pod(exit_code=1, message="first", created=NOW - timedelta(minutes=1))
    newer = pod(exit_code=2, message="second", created=NOW)
    reason = reflection.failure_reason(job(("Failed", "PodFailurePolicy", "")), [newer, older])
    assert "second" in reason and "exit code 2" in reason


def test_a_failed_shard_is_named_by_its_completion_index() -> None:
    failed = job(("Failed", "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number"))
    failed["spec"]["completions"] = 4
    shard = pod(exit_code=1, message="EmbeddingError: server unreachable")
    shard["metadata"]["annotations"] = {reflection.COMPLETION_INDEX_ANNOTATION: "2"}
    reason = reflection.failure_reason(failed, [shard])
    assert reason == (
        "shard 3 of 4: the indexer failed (exit code 1): EmbeddingError: server unreachable "
        "(MaxFailedIndexesExceeded)"
    )
    assert reflection.failure_code(reason) == "MaxFailedIndexesExceeded"
    # An unsharded Job's pod names no shard, whatever its annotations.
    single = job(("Failed", "PodFailurePolicy", ""))
    assert not reflection.failure_reason(single, [shard]).startswith("shard")


def test_job_outcome_and_activity() -> None:
    assert reflection.job_outcome(job()) is None and reflection.job_is_active(job())
    assert reflection.job_outcome(job(("Complete", "", ""))) == "Complete"
    assert reflection.job_outcome(job(("Failed", "DeadlineExceeded", ""))) == "Failed"
    assert not reflection.job_is_active(job(("Complete", "", "")))
    deleting = job()
    deleting["metadata"]["deletionTimestamp"] = ts(NOW)
    assert not reflection.job_is_active(deleting)
    assert reflection.job_id_of(job()) == uuid.UUID(int=1)
    assert reflection.job_id_of({"metadata": {"labels": {"codebase-mcp.dev/job-id": "x"}}}) is None


@pytest.mark.parametrize(
    ("stuck", "fragments"),
    [
        (
            pod("Pending", waiting="ImagePullBackOff"),
            ["ImagePullBackOff: ImagePullBackOff details", "more than 300 s"],
        ),
        (pod("Pending", waiting="ErrImagePull"), ["ErrImagePull"]),
        (
            pod("Pending", scheduled=("Unschedulable", "0/1 nodes are available")),
            ["Unschedulable: 0/1 nodes"],
        ),
        (pod("Pending"), ["no container started"]),
    ],
)
def test_stuck_pending_reasons(stuck: dict[str, Any], fragments: list[str]) -> None:
    reason = reflection.stuck_pending_reason(stuck, 300)
    assert "stayed Pending" in reason
    for fragment in fragments:
        assert fragment in reason


def test_pending_too_long_counts_from_pod_creation() -> None:
    young = pod("Pending", created=NOW - timedelta(seconds=10))
    old = pod("Pending", created=NOW - timedelta(seconds=400))
    assert not reflection.pending_too_long(young, 300, NOW)
    assert reflection.pending_too_long(old, 300, NOW)
    assert not reflection.pending_too_long(pod("Running", created=NOW - timedelta(hours=1)), 300, NOW)


@pytest.mark.parametrize("reason", ["ErrImageNeverPull", "InvalidImageName"])
def test_a_pod_that_can_never_start_is_given_up_at_once_with_the_kubelets_reason(reason: str) -> None:
    young = pod("Pending", waiting=reason, created=NOW - timedelta(seconds=2))
    assert reflection.pending_too_long(young, 300, NOW)
    text = reflection.stuck_pending_reason(young, 300)
    assert f"cannot start ({reason}: {reason} details)" in text and "300 s" not in text
    # A pull that failed may succeed on the next try: that one waits for the timeout.
    assert not reflection.pending_too_long(pod("Pending", waiting="ImagePullBackOff", created=NOW), 300, NOW)


def row(status: JobStatus, **values: Any) -> Job:
    base = Job(
        id=uuid.UUID(int=7),
        repo_path="/workspace/a",
        project_id="default",
        status=status,
        error_message=None,
        files_indexed=0,
        chunks_created=0,
        started_at=None,
        completed_at=None,
        created_at=NOW,
        force_reindex=False,
        source_git_url=None,
        source_git_ref=None,
        phase=None,
        progress_message=None,
        files_seen=0,
        files_total=None,
        files_skipped=0,
        timeout_seconds=3600,
        updated_at=NOW,
        heartbeat_at=None,
        runner=None,
        k8s_namespace="ns",
        k8s_name="a",
        k8s_job_name=None,
        progress_fraction=None,
        remaining_seconds=None,
    )
    return replace(base, **values)


def conditions_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_status_of_a_queued_then_running_then_completed_request() -> None:
    queued = reflection.request_status(row(JobStatus.PENDING), job_name=None)
    assert queued["phase"] == "Pending" and "queued" in queued["message"]
    assert conditions_of(queued)["JobCreated"]["status"] == "False"

    running = reflection.request_status(
        row(JobStatus.RUNNING, started_at=NOW, files_indexed=3, progress_message="embedding"),
        job_name="cbm-index-x",
        previous=queued,
    )
    assert running["phase"] == "Running" and running["jobName"] == "cbm-index-x"
    assert running["startedAt"] == ts(NOW) and running["filesIndexed"] == 3
    assert (
        conditions_of(running)["Accepted"]["lastTransitionTime"]
        == conditions_of(queued)["Accepted"]["lastTransitionTime"]
    )

    done = reflection.request_status(
        row(JobStatus.COMPLETED, files_indexed=10, chunks_created=42, completed_at=NOW),
        job_name="cbm-index-x",
        previous=running,
    )
    assert (done["phase"], done["filesIndexed"], done["chunksCreated"]) == ("Completed", 10, 42)
    assert conditions_of(done)["Finished"] | {"lastTransitionTime": None} == {
        "type": "Finished",
        "status": "True",
        "reason": "Completed",
        "message": done["message"],
        "lastTransitionTime": None,
    }


def test_a_sharded_runs_status_lists_its_shards_as_their_rows_left_them() -> None:
    shards = [
        ShardProgress(0, "done", 1, "done", "shard 1 of 2 done: indexed 5 files", 5, 5, 5, 20, 1.0),
        ShardProgress(1, "running", 2, "embedding", "embedding 3 of 7 files", 3, 7, 2, 9, 0.4),
    ]
    status = reflection.request_status(
        row(JobStatus.RUNNING, started_at=NOW, files_indexed=7), job_name="j", shards=shards
    )
    assert status["shards"] == [
        {
            "index": 0,
            "state": "Done",
            "attempts": 1,
            "filesIndexed": 5,
            "filesTotal": 5,
            "chunksCreated": 20,
            "message": "shard 1 of 2 done: indexed 5 files",
        },
        {
            "index": 1,
            "state": "Running",
            "attempts": 2,
            "filesIndexed": 2,
            "filesTotal": 7,
            "chunksCreated": 9,
            "message": "embedding 3 of 7 files",
        },
    ]
    assert "shards" not in reflection.request_status(row(JobStatus.RUNNING), job_name="j")


def test_failed_status_carries_the_rows_error_message() -> None:
    status = reflection.request_status(
        row(JobStatus.FAILED, error_message="boom (PodFailurePolicy)"), job_name="j"
    )
    assert status["phase"] == "Failed" and status["message"] == "boom (PodFailurePolicy)"


def test_status_differs_ignores_condition_timestamps() -> None:
    first = reflection.request_status(row(JobStatus.RUNNING), job_name="j")
    again = reflection.request_status(row(JobStatus.RUNNING), job_name="j", previous=first)
    assert not reflection.status_differs(first, again)
    assert reflection.status_differs(first, reflection.request_status(row(JobStatus.COMPLETED), job_name="j"))


def test_invalid_status_is_failed_and_not_accepted() -> None:
    status = reflection.invalid_status("spec.source needs exactly one of path or git", job_id=None)
    assert status["phase"] == "Failed"
    assert conditions_of(status)["Accepted"]["reason"] == "InvalidSpec"


def test_every_condition_carries_the_observed_generation() -> None:
    status = reflection.request_status(row(JobStatus.RUNNING), job_name="j", generation=3)
    assert status["observedGeneration"] == 3
    assert {c["observedGeneration"] for c in status["conditions"]} == {3}
    invalid = reflection.invalid_status("bad", job_id=None, generation=4)
    assert {c["observedGeneration"] for c in invalid["conditions"]} == {4}


def test_complete_is_true_only_for_success_and_failed_names_the_kubernetes_reason() -> None:
    done = conditions_of(reflection.request_status(row(JobStatus.COMPLETED), job_name="j"))
    assert (done["Complete"]["status"], done["Failed"]["status"]) == ("True", "False")
    failed = conditions_of(
        reflection.request_status(
            row(
                JobStatus.FAILED,
                error_message="the indexer refused its input (exit code 2) (PodFailurePolicy)",
            ),
            job_name="j",
        )
    )
    assert (failed["Complete"]["status"], failed["Failed"]["status"]) == ("False", "True")
    assert failed["Failed"]["reason"] == "PodFailurePolicy"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            "ran longer than its timeout of 60 s (timeoutSeconds) and was stopped (DeadlineExceeded)",
            "DeadlineExceeded",
        ),
        (
            "the Job x could not create its pod for more than 5 s (FailedCreate: exceeded quota)",
            "FailedCreate",
        ),
        ("the indexer pod p cannot start (ErrImageNeverPull: never pull)", "ErrImageNeverPull"),
        ("the Job x was deleted before its outcome was recorded", "IndexingFailed"),
        (None, "IndexingFailed"),
    ],
)
def test_failure_code_is_the_last_kubernetes_reason_the_message_names(message: str | None, code: str) -> None:
    assert reflection.failure_code(message) == code
