"""One job lifecycle for both runners: what the local supervisor and the Kubernetes operator share.

In the spirit of Kueue's `GenericJob` (one reconciler, thin adapters per job kind), the decisions
that must not differ between the local launcher and the operator live here, once:

- **Admission** (`admissible`): the oldest pending jobs first, at most the free slots, and never two
  active jobs of the same repository in the same project (the second waits; the MCP tool joins the
  active one instead of creating a second, `JobStore.create(unless_active=True)`).
- **Outcomes** (`Outcome`, `record`): a terminal state with its reason, applied as one conditional
  transition; the runner adds its own metric, event and log line through one callback.
- **"Is the database away?"** lives in `mcp_server.db.errors`, with the other classifications of
  database failures, for the runners and the front ends alike.

The indexer's exit codes and their words are the indexer's own contract (`indexer.outcome`); the
runners turn a process exit (local) or a container's terminated state (Kubernetes) into an `Outcome`
with `indexer.outcome.outcome_of_exit`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mcp_server.core.jobs import Job, JobStatus, JobStore


def repository_key(job: Job) -> tuple[str, str]:
    """What may have only one active job at a time: the repository (path, or URL#ref) in a project."""
    return job.project_id, job.repo_path


def admissible(pending: Iterable[Job], *, active: Iterable[Job], free: int) -> list[Job]:
    """The pending jobs to start now, oldest first: at most `free`, and none whose repository and
    project already has an active (started) job or is picked earlier in the same call."""
    busy = {repository_key(job) for job in active}
    chosen: list[Job] = []
    for job in pending:
        if len(chosen) >= free:
            break
        if repository_key(job) in busy:
            continue
        busy.add(repository_key(job))
        chosen.append(job)
    return chosen


def blocking_job(job: Job, active: Iterable[Job]) -> Job | None:
    """The active job of the same repository and project that `job` waits for, if any."""
    return next(
        (other for other in active if other.id != job.id and repository_key(other) == repository_key(job)),
        None,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """A terminal state and its reason (None for a completion)."""

    status: JobStatus
    reason: str | None = None

    def __post_init__(self) -> None:
        if not self.status.is_terminal:
            raise ValueError(f"an outcome is terminal, not {self.status.value}")

    @classmethod
    def completed(cls) -> Outcome:
        return cls(JobStatus.COMPLETED)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(JobStatus.FAILED, reason)

    @classmethod
    def cancelled(cls, reason: str) -> Outcome:
        return cls(JobStatus.CANCELLED, reason)


def succeeded(shards: int, *, published: bool) -> Outcome:
    """The outcome of a run whose every process or pod succeeded. A sharded run is complete only
    if its last shard published the generation; all shards ending without that cannot happen
    unless one broke the protocol, and is said rather than reported as a success."""
    if shards > 1 and not published:
        return Outcome.failed(f"all {shards} shards ended but none published the index")
    return Outcome.completed()


def record(
    jobs: JobStore,
    job_id: uuid.UUID,
    outcome: Outcome,
    *,
    runner: str | None = None,
    on_recorded: Callable[[Outcome], None] | None = None,
) -> bool:
    """Apply `outcome` to the row; True when this call decided it (then `on_recorded` runs: the
    runner's metric, event and log line). A completion of a row still `pending` (the pod finished
    before anyone saw it run) passes through `running` first."""
    if outcome.status is JobStatus.COMPLETED:
        row = jobs.get(job_id)
        if row.status is JobStatus.PENDING:
            jobs.mark_running(job_id, runner=runner)
        applied = jobs.complete(job_id)
    elif outcome.status is JobStatus.FAILED:
        applied = jobs.fail(job_id, outcome.reason or "failed")
    else:
        applied = jobs.cancel(job_id, outcome.reason or "cancelled")
    if applied and on_recorded is not None:
        on_recorded(outcome)
    return applied
