"""Reading Jobs and pods, writing IndexingRequest status: pure functions, no API or database calls.

The operator decides terminal job states from what Kubernetes reports (the indexer never does on
Kubernetes), so the words of a failure are composed here from the Job's condition (DeadlineExceeded,
BackoffLimitExceeded, PodFailurePolicy) and the indexer container's terminated state (exit code and
the message the indexer wrote to /dev/termination-log).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from codebase_operator.jobs_builder import CLONE_CONTAINER_NAME, CONTAINER_NAME, JOB_ID_LABEL
from mcp_server.core.jobs import Job, JobStatus, ShardProgress
from mcp_server.indexer import outcome

PHASES: dict[JobStatus, str] = {
    JobStatus.PENDING: "Pending",
    JobStatus.RUNNING: "Running",
    JobStatus.COMPLETED: "Completed",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}
TERMINAL_PHASES = frozenset({"Completed", "Failed", "Cancelled"})

# Container waiting reasons that mean "this pod will not start by itself".
STUCK_WAITING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)

# Of those, the ones no wait can cure: the kubelet never pulls an image it is told never to pull,
# and a malformed name stays malformed. Such a pod fails its job at once, not after
# POD_PENDING_TIMEOUT_SECONDS (ErrImagePull and ImagePullBackOff may be a registry's hiccup).
FINAL_WAITING_REASONS = frozenset({"ErrImageNeverPull", "InvalidImageName"})

Body = Mapping[str, Any]
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


# --- small readers ------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_id_of(obj: Body) -> uuid.UUID | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_ID_LABEL)
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def condition(obj: Body, kind: str) -> Mapping[str, Any] | None:
    """The condition of that type if its status is True."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def job_outcome(job: Body) -> str | None:
    """ "Complete" or "Failed" once the Job controller has decided, else None."""
    if condition(job, "Complete"):
        return "Complete"
    if condition(job, "Failed"):
        return "Failed"
    return None


def job_is_active(job: Body) -> bool:
    """Counts against MAX_CONCURRENT_INDEXING_JOBS: not finished and not being deleted."""
    return job_outcome(job) is None and not (job.get("metadata") or {}).get("deletionTimestamp")


def completion_index(pod: Body) -> int | None:
    """The shard an Indexed Job's pod runs (its JOB_COMPLETION_INDEX), from the annotation the Job
    controller sets."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def pod_phase(pod: Body) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _indexer_status(pod: Body) -> Mapping[str, Any] | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER_NAME:
            return dict(status)
    return dict(statuses[0]) if statuses else None


def terminated_state(pod: Body) -> Mapping[str, Any] | None:
    status = _indexer_status(pod)
    if status is None:
        return None
    state = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
    return dict(state) if state else None


def clone_terminated_state(pod: Body) -> Mapping[str, Any] | None:
    """The terminated state of a source.git pod's `clone` init container, if it ended."""
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") == CLONE_CONTAINER_NAME:
            state = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get(
                "terminated"
            )
            return dict(state) if state else None
    return None


def running_since(pod: Body) -> datetime | None:
    """When the pod entered Running, as reported (1 s resolution in the API)."""
    status = _indexer_status(pod)
    started = parse_time(((status or {}).get("state") or {}).get("running", {}).get("startedAt"))
    if started is not None:
        return started
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return parse_time((pod.get("status") or {}).get("startTime"))


def finished_at(pod: Body) -> datetime | None:
    term = terminated_state(pod)
    return parse_time(term.get("finishedAt")) if term else None


def waiting_problem(pod: Body) -> tuple[str, str] | None:
    """(reason, message) when a Pending pod reports why it cannot start, else None."""
    status = _indexer_status(pod)
    waiting = ((status or {}).get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in STUCK_WAITING_REASONS:
        return str(waiting["reason"]), str(waiting.get("message") or "")
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("reason") or "Unschedulable"), str(cond.get("message") or "")
    if waiting.get("reason") and waiting.get("reason") != "ContainerCreating":
        return str(waiting["reason"]), str(waiting.get("message") or "")
    return None


# --- reasons ------------------------------------------------------------------------------------


def failure_reason(job: Body, pods: Iterable[Body] = ()) -> str:
    """Why a Failed Job failed, naming the Kubernetes reason so people can search for it."""
    cond = condition(job, "Failed") or condition(job, "FailureTarget") or {}
    reason = str(cond.get("reason") or "Failed")
    if reason == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return (
            f"the indexing Job ran longer than its timeout of {deadline} s (timeoutSeconds) and was "
            "stopped (DeadlineExceeded)"
        )
    ordered = sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    completions = int((job.get("spec") or {}).get("completions") or 1)
    for pod in reversed(ordered):
        index = completion_index(pod) if completions > 1 else None
        shard = f"shard {index + 1} of {completions}: " if index is not None else ""
        clone = clone_terminated_state(pod)
        if clone and clone.get("exitCode") not in (None, 0):
            exit_text = outcome.failure_reason(
                clone.get("exitCode"), clone.get("message"), clone.get("reason")
            )
            return f"{shard}the clone step failed: {exit_text} ({reason})"
        term = terminated_state(pod)
        if term and term.get("exitCode") not in (None, 0):
            exit_text = outcome.failure_reason(term.get("exitCode"), term.get("message"), term.get("reason"))
            return f"{shard}{exit_text} ({reason})"
    message = str(cond.get("message") or "").strip()
    return f"the indexing Job failed ({reason})" + (f": {message}" if message else "")


def stuck_pending_reason(pod: Body, timeout_seconds: int) -> str:
    name = (pod.get("metadata") or {}).get("name", "?")
    problem = waiting_problem(pod)
    if problem is None:
        why = "no container started"
    else:
        why = problem[0] + (f": {problem[1]}" if problem[1] else "")
    if problem is not None and problem[0] in FINAL_WAITING_REASONS:
        return f"the indexer pod {name} cannot start ({why})"
    return f"the indexer pod {name} stayed Pending for more than {timeout_seconds} s ({why})"


def pending_too_long(pod: Body, timeout_seconds: int, now: datetime) -> bool:
    """A Pending pod to give up on: waiting longer than the timeout, or for what never comes."""
    if pod_phase(pod) != "Pending" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    problem = waiting_problem(pod)
    if problem is not None and problem[0] in FINAL_WAITING_REASONS:
        return True
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return created is not None and (now - created).total_seconds() > timeout_seconds


# --- IndexingRequest status ---------------------------------------------------------------------


# The operator's failure messages name the Kubernetes reason: "... (DeadlineExceeded)" at the end,
# or "... (FailedCreate: exceeded quota ...)" / "... (ImagePullBackOff: ...)" with its details.
_REASON_AT_END = re.compile(r"\(([A-Z][A-Za-z]+)\)\s*$")
_REASON_WITH_DETAILS = re.compile(r"\(([A-Z][A-Za-z]+): ")


def failure_code(message: str | None) -> str:
    """The CamelCase reason of a Failed condition: the Kubernetes reason the message names
    (DeadlineExceeded, PodFailurePolicy, BackoffLimitExceeded, FailedCreate, ImagePullBackOff...),
    else IndexingFailed."""
    found = _REASON_AT_END.search(message or "") or _REASON_WITH_DETAILS.search(message or "")
    return found.group(1) if found else "IndexingFailed"


def _conditions(
    previous: Iterable[Mapping[str, Any]],
    wanted: list[tuple[str, bool, str, str]],
    now: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Conditions with lastTransitionTime kept while a condition's status does not change, each
    with the generation it was computed from (metav1.Condition's observedGeneration)."""
    before = {c.get("type"): c for c in previous}
    result = []
    for kind, status, reason, message in wanted:
        value = "True" if status else "False"
        old = before.get(kind)
        since = old.get("lastTransitionTime") if old and old.get("status") == value else now
        cond: dict[str, Any] = {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message[:1000],
            "lastTransitionTime": since,
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        result.append(cond)
    return result


def request_status(
    row: Job,
    *,
    job_name: str | None,
    previous: Mapping[str, Any] | None = None,
    generation: int | None = None,
    waiting_message: str | None = None,
    shards: Sequence[ShardProgress] = (),
) -> dict[str, Any]:
    """The IndexingRequest status that reflects a job row (the row is the source of truth), with
    a sharded run's shards as their rows left them."""
    previous = previous or {}
    phase = PHASES[row.status]
    if row.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        message = row.error_message or phase.lower()
    elif row.status is JobStatus.PENDING:
        message = waiting_message or (
            f"Job {job_name} created; waiting for its pod to start"
            if job_name
            else "queued: waiting for a free slot (MAX_CONCURRENT_INDEXING_JOBS)"
        )
    else:
        message = row.progress_message or ("indexing" if row.status is JobStatus.RUNNING else phase.lower())
    now = format_time(datetime.now(UTC)) or ""
    finished = row.status.is_terminal
    wanted = [
        ("Accepted", True, "Valid", "the spec is valid and the job row exists"),
        (
            "JobCreated",
            job_name is not None,
            "JobCreated" if job_name else "Queued",
            f"Job {job_name}" if job_name else "waiting for a free slot",
        ),
        ("Finished", finished, phase if finished else "NotFinished", message if finished else ""),
        # As batch/v1 Jobs: `kubectl wait --for=condition=Complete` waits for success only.
        (
            "Complete",
            row.status is JobStatus.COMPLETED,
            "Completed" if row.status is JobStatus.COMPLETED else phase,
            message if row.status is JobStatus.COMPLETED else "",
        ),
        (
            "Failed",
            row.status is JobStatus.FAILED,
            failure_code(message) if row.status is JobStatus.FAILED else phase,
            message if row.status is JobStatus.FAILED else "",
        ),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "jobId": str(row.id),
        "jobName": job_name,
        "filesIndexed": row.files_indexed,
        "chunksCreated": row.chunks_created,
        "message": message[:1000],
        "startedAt": format_time(row.started_at),
        "completedAt": format_time(row.completed_at),
        "conditions": _conditions(previous.get("conditions") or [], wanted, now, generation),
    }
    if shards:
        status["shards"] = [shard_status(shard) for shard in shards]
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def shard_status(shard: ShardProgress) -> dict[str, Any]:
    item: dict[str, Any] = {
        "index": shard.shard,
        "state": "Done" if shard.status == "done" else "Running",
        "attempts": shard.attempts,
        "filesIndexed": shard.files_indexed,
        "chunksCreated": shard.chunks_created,
        "message": (shard.message or "")[:300],
    }
    if shard.files_total is not None:
        item["filesTotal"] = shard.files_total
    return item


def invalid_status(
    message: str,
    *,
    job_id: uuid.UUID | None,
    previous: Mapping[str, Any] | None = None,
    generation: int | None = None,
) -> dict[str, Any]:
    """Status of a request the operator refused (its spec is invalid)."""
    now = format_time(datetime.now(UTC)) or ""
    wanted = [
        ("Accepted", False, "InvalidSpec", message),
        ("JobCreated", False, "InvalidSpec", "no Job is created for an invalid spec"),
        ("Finished", True, "Failed", message),
        ("Complete", False, "InvalidSpec", ""),
        ("Failed", True, "InvalidSpec", message),
    ]
    status: dict[str, Any] = {
        "phase": "Failed",
        "jobId": str(job_id) if job_id else None,
        "jobName": None,
        "message": message[:1000],
        "completedAt": now,
        "conditions": _conditions((previous or {}).get("conditions") or [], wanted, now, generation),
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def status_differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a patch would change anything (ignoring condition timestamps)."""
    for key, value in wanted.items():
        if key == "conditions":
            strip = [
                {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in (current.get(key) or [])
            ]
            if strip != [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in value]:
                return True
        elif key == "completedAt" and current.get("phase") == wanted.get("phase") == "Failed":
            continue  # invalid_status stamps "now"; not a change
        elif current.get(key) != value:
            return True
    return False
