"""Publishing a job row into its IndexingRequest: the status subresource and one Event per phase.

The row is the source of truth; the status is recomputed from it (`reflection.request_status`), so
publishing twice, late or from a stale copy is harmless. Only the leader publishes, and under one
lock per process, so a phase change is announced by exactly one Event.

Why a pending job waits (a FailedCreate, an image that cannot be pulled, Kueue) is seen by the
resync and by pod events, not by every caller that publishes: the publisher remembers the latest
reason per job, so a publish that does not know it (a request event, our own status patch coming
back) keeps it instead of flickering back to the plain "waiting for its pod" message.
"""

from __future__ import annotations

import threading
import uuid
from enum import Enum
from typing import Any, Final

from codebase_operator import reflection
from codebase_operator.objects import Body, KubeApi, meta
from mcp_server.core.errors import JobNotFound
from mcp_server.core.jobs import Job, JobStatus, JobStore
from mcp_server.runners.kube_api import NotFound, ObjectRef

EVENT_REASONS = {
    "Pending": "Accepted",
    "Running": "Running",
    "Completed": "Completed",
    "Failed": "Failed",
    "Cancelled": "Cancelled",
}


class _Unknown(Enum):
    UNKNOWN = "unknown"


UNKNOWN: Final = _Unknown.UNKNOWN
"""`waiting_message=UNKNOWN`: the caller did not look; keep the reason last seen. None says that
nothing holds the job back now."""


class Publisher:
    def __init__(self, jobs: JobStore, kube: KubeApi) -> None:
        self.jobs = jobs
        self.kube = kube
        self._publish_lock = threading.Lock()
        self._waiting: dict[uuid.UUID, str] = {}

    def _row(self, job_id: uuid.UUID) -> Job | None:
        try:
            return self.jobs.get(job_id)
        except JobNotFound:
            return None

    def publish(
        self,
        job_id: uuid.UUID,
        *,
        body: Body | None = None,
        job_name: str | None = None,
        waiting_message: str | _Unknown | None = UNKNOWN,
    ) -> None:
        """Make the IndexingRequest's status reflect the job row; post an Event when its phase changes.

        `body`, when given, is a possibly stale copy (from a list): if it already shows the wanted
        status nothing is done. Otherwise the row and the object are read again under a lock, so
        concurrent publishers (event handlers, the resync) never write an older state over a newer
        one or post the same phase change twice.
        """
        waiting = self._waiting_reason(job_id, waiting_message)
        if body is not None:
            row = self._row(job_id)
            if row is None or not self._status_change(row, body, job_name, waiting):
                return
        with self._publish_lock:
            row = self._row(job_id)
            if row is None or row.status is not JobStatus.PENDING:
                self._waiting.pop(job_id, None)  # only a pending job waits
            if row is None or not row.k8s_namespace or not row.k8s_name:
                return
            fresh = self.kube.get_indexing_request(row.k8s_namespace, row.k8s_name)
            if fresh is None:
                return
            wanted = self._status_change(row, fresh, job_name, waiting)
            if wanted is None:
                return
            ref = ObjectRef.of(fresh)
            try:
                self.kube.patch_indexing_request_status(ref.namespace, ref.name, wanted)
            except NotFound:
                return
            previous_phase = (fresh.get("status") or {}).get("phase")
        if previous_phase != wanted["phase"]:
            self.kube.post_event(
                ref,
                reason=EVENT_REASONS[wanted["phase"]],
                message=f"job {row.id}: {wanted['message']}",
                warning=wanted["phase"] == "Failed",
            )

    def _waiting_reason(self, job_id: uuid.UUID, given: str | _Unknown | None) -> str | None:
        if given is UNKNOWN:
            return self._waiting.get(job_id)
        if given is None:
            self._waiting.pop(job_id, None)
        else:
            self._waiting[job_id] = given
        return given

    def _status_change(
        self, row: Job, body: Body, job_name: str | None, waiting_message: str | None
    ) -> dict[str, Any] | None:
        """The status to write, or None when the object already shows it."""
        previous = body.get("status") or {}
        if previous.get("jobId") not in (None, str(row.id)):
            return None  # the object reports another job (refused adoption): leave it
        wanted = reflection.request_status(
            row,
            job_name=job_name or previous.get("jobName") or row.k8s_job_name,
            previous=previous,
            generation=meta(body).get("generation"),
            waiting_message=waiting_message,
            shards=self.jobs.shard_progress(row.id) if row.shards > 1 else (),
        )
        return wanted if reflection.status_differs(previous, wanted) else None
