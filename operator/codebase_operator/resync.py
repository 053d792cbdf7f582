"""The level-triggered loop: read everything, converge everything, and admit new Jobs.

`Resync.resync` runs every OPERATOR_RESYNC_SECONDS and whenever an event wakes it, on the leader
only. It reflects finished Jobs an event missed, gives finished and recorded Jobs their TTL, fails
pods stuck Pending and Jobs that cannot create their pod (FailedCreate), notices Jobs or requests
that vanished, and is the only place that creates Jobs: admission is decided by one thread of one
replica, with the policy both runners share (`mcp_server.core.lifecycle.admissible`).

It reads the cluster from `cluster_view` (kopf's watch-fed indices once complete, LIST requests
before that), so a pass costs the API server nothing but the writes it decides on.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from codebase_operator import reflection
from codebase_operator.jobs_builder import (
    JOB_ID_LABEL,
    build_job,
    is_suspended,
    queue_name_for,
    queued_by_kueue,
)
from codebase_operator.objects import (
    UNREACHABLE,
    Body,
    describe_unreachable,
    is_uuid,
    job_log,
    key,
    meta,
    spec_of,
)
from codebase_operator.spec import CANCELLED, parse_spec
from mcp_server.core import lifecycle
from mcp_server.core.errors import InvalidInput
from mcp_server.core.jobs import ACTIVE_STATUSES, Job, JobStatus
from mcp_server.core.lifecycle import Outcome
from mcp_server.runners.kube_api import Conflict, KubernetesError, ObjectRef, Unavailable

if TYPE_CHECKING:
    from codebase_operator.reconciler import Reconciler

log = logging.getLogger("codebase_operator")


class Resync:
    def __init__(self, reconciler: Reconciler) -> None:
        self.r = reconciler
        self._lock = threading.Lock()
        self.last_resync_ok: float | None = None

    def run_forever(self, stop: threading.Event, wake: threading.Event) -> None:
        period = self.r.settings.operator.resync_seconds
        while not stop.is_set():
            if self.r.is_leader():
                try:
                    self.resync()
                except UNREACHABLE as exc:
                    # Expected during an outage, once a period: one line each, not a traceback.
                    self.r.metrics.resync_errors.inc()
                    log.warning("resync failed: %s; retrying in %.1f s", describe_unreachable(exc), period)
                except Exception:
                    self.r.metrics.resync_errors.inc()
                    log.exception("resync failed; retrying in %.1f s", period)
            wake.wait(period)
            wake.clear()

    def health(self) -> dict[str, Any]:
        """For kopf's /healthz: reports, never fails. A database or API outage must not make the
        kubelet restart the operator in a loop (it could do nothing better after a restart); the
        probe fails only when the event loop itself stops answering."""
        info: dict[str, Any] = {"leader": self.r.is_leader()}
        if self.last_resync_ok is not None:
            info["last_resync_seconds_ago"] = round(time.monotonic() - self.last_resync_ok, 1)
        return info

    def resync(self) -> None:
        with self._lock:
            started = time.monotonic()
            self._resync()
            self.r.metrics.set_job_counts(self.r.jobs.count_by_status())
            self.last_resync_ok = time.monotonic()
            self.r.metrics.resync_seconds.observe(self.last_resync_ok - started)

    def _resync(self) -> None:
        r = self.r
        snapshot = r.view.snapshot()
        r.metrics.resync_reads.labels(source=snapshot.source).inc()
        requests, k8s_jobs, pods = snapshot.requests, snapshot.jobs, snapshot.pods
        pending_pods = {reflection.job_id_of(p): p for p in pods if reflection.pod_phase(p) == "Pending"}
        with_pods = {reflection.job_id_of(p) for p in pods}
        by_key = {key(req): req for req in requests}
        jobs_by_id: dict[uuid.UUID, dict[str, Any]] = {}
        for job in k8s_jobs:
            job_id = reflection.job_id_of(job)
            if job_id is not None:
                jobs_by_id[job_id] = job
        now = datetime.now(UTC)

        # 1. Finished Jobs: reflect those whose rows still say pending/running (an event missed
        #    while down); give the recorded ones their TTL.
        for job_id, job in jobs_by_id.items():
            if reflection.job_outcome(job) is None:
                continue
            row = r._row(job_id)
            if row is not None and row.status in ACTIVE_STATUSES:
                r.job_changed(job)
            else:
                r.release_job(job)

        # 2. Pods stuck in Pending, and Jobs that cannot create their pod at all: fail the job,
        #    delete the Job (neither counts as a retry).
        stopped: set[uuid.UUID] = set()
        waiting: dict[uuid.UUID, str] = {}
        for pod in pods:
            job_id = reflection.job_id_of(pod)
            stuck_job = jobs_by_id.get(job_id) if job_id else None
            if job_id is None or stuck_job is None or not reflection.job_is_active(stuck_job):
                continue
            if reflection.pending_too_long(pod, r.settings.kubernetes.pod_pending_timeout_seconds, now):
                self._stop(job_id, stuck_job, reflection.stuck_pending_reason(pod, self._pending_timeout))
                stopped.add(job_id)
        for job_id, job in jobs_by_id.items():
            if job_id in with_pods or not reflection.job_is_active(job) or is_suspended(job):
                continue  # a suspended Job creates no pod until Kueue admits it
            problem = self._failed_create(job)
            if problem is None:
                continue
            created = reflection.parse_time(meta(job).get("creationTimestamp")) or now
            if (now - created).total_seconds() > self._pending_timeout:
                self._stop(
                    job_id,
                    job,
                    f"the Job {key(job)[1]} could not create its pod for more than "
                    f"{self._pending_timeout} s (FailedCreate: {problem})",
                )
                stopped.add(job_id)
            else:
                waiting[job_id] = (
                    f"the Job {key(job)[1]} cannot create its pod (FailedCreate: {problem}); "
                    f"it fails after {self._pending_timeout} s"
                )

        # 3. Each request: admit it if no handler has yet; converge its status; notice lost Jobs.
        pending_rows: dict[uuid.UUID, Body] = {}
        for request in requests:
            if meta(request).get("deletionTimestamp"):
                continue
            status = request.get("status") or {}
            if status.get("phase") in reflection.TERMINAL_PHASES:
                continue
            raw_id = status.get("jobId")
            row = r._row(uuid.UUID(raw_id)) if is_uuid(raw_id) else None
            if row is None:
                r.admit(request)
                continue
            if spec_of(request).get("status") == CANCELLED and row.status in ACTIVE_STATUSES:
                # Set while no operator led (or its event met an outage): stop the run now.
                r.cancel_as_asked(ObjectRef.of(request), row.id)
                row = r.jobs.get(row.id)
            if (
                row.status in ACTIVE_STATUSES
                and row.id not in jobs_by_id
                and row.id not in stopped
                and status.get("jobName")
                and not self._job_exists(row.id, snapshot.source)
            ):
                # Jobs get their TTL only after the outcome is recorded: someone deleted this one.
                self.r.record(
                    row.id,
                    Outcome.failed(
                        f"the Job {status['jobName']} was deleted before its outcome was recorded"
                    ),
                )
                row = r.jobs.get(row.id)
            message = waiting.get(row.id)
            if row.status is JobStatus.PENDING and message is None:
                message = r._waiting_message(pending_pods.get(row.id))
            if row.status is JobStatus.PENDING and message is None and row.id in jobs_by_id:
                message = _kueue_message(jobs_by_id[row.id])
            if row.status is JobStatus.PENDING and row.id not in jobs_by_id:
                pending_rows[row.id] = request
            else:
                r.publish(row.id, body=request, waiting_message=message)

        # 4. Active rows whose IndexingRequest is gone (a DELETED event missed while down).
        for row in self._active_rows():
            if not r._in_scope(row.k8s_namespace) or not row.k8s_name or row.k8s_namespace is None:
                continue
            if (row.k8s_namespace, row.k8s_name) in by_key:
                continue
            # Read it again: the MCP launcher records the names only after creating the object,
            # which may be after our list.
            if r.kube.get_indexing_request(row.k8s_namespace, row.k8s_name) is None:
                r.cancel_deleted(row.k8s_namespace, row.k8s_name, row.id)

        # 5. Admission, with the policy the local launcher uses too.
        self._admit(jobs_by_id, stopped, pending_rows)

    @property
    def _pending_timeout(self) -> int:
        return self.r.settings.kubernetes.pod_pending_timeout_seconds

    def _active_rows(self) -> list[Job]:
        rows = self.r.jobs.list(status=JobStatus.PENDING, limit=10_000)
        return rows + self.r.jobs.list(status=JobStatus.RUNNING, limit=10_000)

    def _admit(
        self,
        jobs_by_id: dict[uuid.UUID, dict[str, Any]],
        stopped: set[uuid.UUID],
        pending_requests: dict[uuid.UUID, Body],
    ) -> None:
        r = self.r
        started_ids = {
            job_id
            for job_id, job in jobs_by_id.items()
            if reflection.job_is_active(job) and job_id not in stopped
        }
        # Kueue's Jobs hold their repository but not one of our slots: Kueue's quota limits them.
        counted = {job_id for job_id in started_ids if not queued_by_kueue(jobs_by_id[job_id])}
        started = [row for row in (r._row(job_id) for job_id in started_ids) if row is not None]
        # Rows running without a Job we can see (another namespace's, a local run) still hold
        # their repository.
        running = r.jobs.list(status=JobStatus.RUNNING, limit=10_000)
        active = started + [row for row in running if row.id not in started_ids]
        candidates = [row for row in r.jobs.pending_in_order(limit=10_000) if row.id in pending_requests]
        free = max(r.settings.jobs.max_concurrent - len(counted), 0)
        for_kueue = {row.id for row in candidates if self._queue_of(pending_requests[row.id])}
        # One pass in creation order for the repository rule; only our own Jobs use up `free`.
        chosen: list[Job] = []
        for row in lifecycle.admissible(candidates, active=active, free=len(candidates)):
            if row.id in for_kueue:
                chosen.append(row)
            elif free > 0:
                chosen.append(row)
                free -= 1
        chosen_ids = {row.id for row in chosen}
        for row in candidates:
            request = pending_requests[row.id]
            if row.id in chosen_ids and self._start(request, row):
                continue
            blocker = lifecycle.blocking_job(row, [*active, *chosen])
            message = (
                f"waiting: job {blocker.id} of the same repository and project is still active"
                if blocker is not None
                else None
            )
            r.publish(row.id, body=request, waiting_message=message)

    def _queue_of(self, request: Body) -> str | None:
        try:
            spec = parse_spec(request.get("spec"), workspace_root=self.r._workspace_root())
        except InvalidInput:
            return None  # _start refuses it
        return queue_name_for(spec, self.r.settings)

    def _start(self, request: Body, row: Job) -> bool:
        """Create the Job of a pending row; True when the Job exists afterwards, or when the
        request's status already says why it cannot (the API refused it)."""
        r = self.r
        if not r.is_leader():
            return False  # lost the Lease during this pass: the new leader decides
        ref = ObjectRef.of(request)
        jl = job_log(row.id, f"{ref.namespace}/{ref.name}")
        try:
            spec = parse_spec(request.get("spec"), workspace_root=r._workspace_root())
        except InvalidInput as exc:
            r._refuse(request, str(exc), fail_row=True)
            return False
        m = meta(request)
        manifest = build_job(
            request=ref,
            spec=spec,
            job_id=row.id,
            settings=r.settings,
            test_hooks=r.test_hooks,
            request_labels=m.get("labels"),
            request_annotations=m.get("annotations"),
        )
        name = manifest["metadata"]["name"]
        try:
            made = r.kube.create_job(ref.namespace, manifest)
            made.setdefault("metadata", {}).setdefault("namespace", ref.namespace)
            r.view.job_created(made)
            created = True
        except Conflict:
            created = False  # made before a restart, or by a racing event: the same Job
        except Unavailable:
            raise
        except KubernetesError as exc:
            # Refused (RBAC, an admission webhook, a quota on Jobs): say so on the request rather
            # than "queued", and let the other requests of this pass be admitted.
            jl.warning("cannot create its Job: %s", exc)
            r.publish(row.id, body=request, waiting_message=f"cannot create the Job {name}: {exc}")
            return True
        r.jobs.set_kubernetes_names(row.id, job_name=name)
        if created:
            r.metrics.jobs_created.inc()
            jl.info("created Job %s/%s", ref.namespace, name)
            r.kube.post_event(ref, reason="JobCreated", message=f"job {row.id}: created Job {name}")
        r.publish(row.id, job_name=name, waiting_message=_kueue_message(manifest))
        return True

    def _job_exists(self, job_id: uuid.UUID, source: str) -> bool:
        """Whether the API server has a Job of this job id. A cached view may not show a Job yet
        (another replica created it a moment ago) or any more: before calling one deleted, ask."""
        if source == "api":
            return False  # just listed: not there
        return bool(self.r.kube.list_jobs(self.r.namespace, label_selector=f"{JOB_ID_LABEL}={job_id}"))

    def _failed_create(self, job: Body) -> str | None:
        """The Job controller's latest FailedCreate message for this Job (a ResourceQuota, pod
        security admission, a missing ServiceAccount...), or None. Jobs have no condition for it;
        the Job controller only records Events."""
        namespace, name = key(job)
        events = self.r.kube.list_events(
            namespace,
            field_selector=f"involvedObject.kind=Job,involvedObject.name={name},reason=FailedCreate",
        )
        uid = meta(job).get("uid")
        events = [e for e in events if not uid or (e.get("involvedObject") or {}).get("uid") in (None, uid)]
        if not events:
            return None
        latest = max(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return str(latest.get("message") or "pod creation failed").strip()[:600]

    def _stop(self, job_id: uuid.UUID, job: Body, reason: str) -> None:
        namespace, name = key(job)
        self.r.record(job_id, Outcome.failed(reason))
        if self.r.kube.delete_job(namespace, name):
            self.r.view.job_deleted(namespace, name)
            job_log(job_id).info("deleted Job %s/%s (propagation Background)", namespace, name)
        self.r.publish(job_id, job_name=name)


def _kueue_message(job: Body) -> str | None:
    """The request's message while its Job waits, suspended, for Kueue to admit it."""
    queue = queued_by_kueue(job)
    if queue is None or not is_suspended(job):
        return None
    return f"queued by Kueue: Job {key(job)[1]} is suspended until LocalQueue {queue} admits it"
