"""What the operator does: IndexingRequest -> job row -> batch/v1 Job, and Job/pod -> row -> status.

Two ways in, one set of idempotent steps:

- Edge-triggered, for latency: kopf hands every IndexingRequest, Job and pod event to `admit`,
  `request_deleted`, `job_changed` and `pod_changed`, which reflect that one object at once.
- Level-triggered, for correctness: `resync` (a thread, every OPERATOR_RESYNC_SECONDS and whenever
  an event wakes it) lists IndexingRequests, Jobs and pods and converges everything: it reflects
  finished Jobs, fails pods stuck Pending, notices Jobs or requests that vanished, and is the only
  place that creates Jobs (so admission under MAX_CONCURRENT_INDEXING_JOBS is decided by one thread,
  oldest pending row first).

Why both are safe together, and across restarts: every row change is a conditional transition
of mcp_server.core.jobs (the first to land wins, a terminal row never changes), Job names are derived
from the job id (a second create is a 409), and status patches are recomputed from the row.
Nothing is remembered in memory that a restart would need.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import InterfaceError, OperationalError

from codebase_operator import reflection
from codebase_operator.jobs_builder import JOB_ID_LABEL, MANAGED_SELECTOR, build_job, job_name
from codebase_operator.metrics import OperatorMetrics
from codebase_operator.spec import RequestSpec, parse_spec
from mcp_server.core.errors import DatabaseUnavailable, InvalidInput, JobNotFound
from mcp_server.core.jobs import ACTIVE_STATUSES, Job, JobStatus, JobStore
from mcp_server.core.settings import Settings
from mcp_server.core.validation import validate_job_id, validate_project_id
from mcp_server.runners.kube_api import Conflict, KubernetesError, NotFound, ObjectRef, Unavailable

log = logging.getLogger("codebase_operator")

Body = Mapping[str, Any]
_JOB_ID_NAMESPACE = uuid.UUID("6c1b8f3e-2a4d-4f0e-9a51-63b0d7c2e8a1")

EVENT_REASONS = {
    "Pending": "Accepted",
    "Running": "Running",
    "Completed": "Completed",
    "Failed": "Failed",
    "Cancelled": "Cancelled",
}


# Errors that mean "PostgreSQL or the API server is away for now", not "this code is wrong".
UNREACHABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    DatabaseUnavailable,
    Unavailable,
)


def describe_unreachable(exc: Exception) -> str:
    """One line for the log: which dependency is away and its own first line of explanation."""
    what = (
        "the Kubernetes API is unreachable" if isinstance(exc, Unavailable) else "the database is unreachable"
    )
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{what} ({detail[0][:300]})" if detail else what


class KubeApi(Protocol):
    """The part of `runners.kube_api.KubeClient` the operator uses (a fake implements it in tests)."""

    def get_indexing_request(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_indexing_requests(self, namespace: str | None) -> list[dict[str, Any]]: ...
    def patch_indexing_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]: ...
    def create_job(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def list_jobs(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]: ...
    def delete_job(self, namespace: str, name: str) -> bool: ...
    def list_pods(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]: ...
    def post_event(
        self,
        regarding: ObjectRef,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        component: str = ...,
    ) -> None: ...


class JobLog(logging.LoggerAdapter[logging.Logger]):
    """Every line about a job carries its id (a `job_id` field in the JSON logs, and in the text)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **(kwargs.get("extra") or {})}
        return f"job {extra.get('job_id')}: {msg}", kwargs


def job_log(job_id: uuid.UUID | str | None, request: str | None = None) -> JobLog:
    return JobLog(log, {"job_id": str(job_id) if job_id else None, "request": request})


def derived_job_id(request: ObjectRef) -> uuid.UUID:
    """The job id of a request applied without spec.jobId: stable across operator restarts (it
    comes from the object's uid), and different for a re-created object of the same name."""
    return uuid.uuid5(_JOB_ID_NAMESPACE, f"{request.namespace}/{request.name}/{request.uid}")


def _meta(body: Body) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def _key(body: Body) -> tuple[str, str]:
    meta = _meta(body)
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _owner_request(obj: Body) -> tuple[str, str] | None:
    """(name, uid) of the IndexingRequest that owns a Job."""
    for owner in _meta(obj).get("ownerReferences") or []:
        if owner.get("kind") == "IndexingRequest":
            return str(owner.get("name")), str(owner.get("uid"))
    return None


class Reconciler:
    def __init__(
        self,
        *,
        settings: Settings,
        jobs: JobStore,
        kube: KubeApi,
        metrics: OperatorMetrics,
        namespace: str | None,
        test_hooks: bool = False,
    ) -> None:
        self.settings = settings
        self.test_hooks = test_hooks
        self.jobs = jobs
        self.kube = kube
        self.metrics = metrics
        self.namespace = namespace  # None: all namespaces
        self._wake = threading.Event()
        self._resync_lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self.last_resync_ok: float | None = None

    # --- helpers ----------------------------------------------------------------------------------

    def _workspace_root(self) -> str | None:
        return (
            self.settings.kubernetes.workspace_mount_path
            if self.settings.kubernetes.workspace_pvc_name
            else None
        )

    def _in_scope(self, namespace: str | None) -> bool:
        return namespace is not None and (self.namespace is None or namespace == self.namespace)

    def _row(self, job_id: uuid.UUID) -> Job | None:
        try:
            return self.jobs.get(job_id)
        except JobNotFound:
            return None

    def _observe_latency(self, phase: str, since: datetime | None) -> None:
        if since is not None:
            delay = max(0.0, (datetime.now(UTC) - since).total_seconds())
            self.metrics.reflection_latency.labels(phase=phase).observe(delay)

    def wake(self) -> None:
        self._wake.set()

    # --- publishing status ------------------------------------------------------------------------

    def publish(
        self,
        job_id: uuid.UUID,
        *,
        body: Body | None = None,
        job_name: str | None = None,
        waiting_message: str | None = None,
    ) -> None:
        """Make the IndexingRequest's status reflect the job row; post an Event when its phase changes.

        `body`, when given, is a possibly stale copy (from a list): if it already shows the wanted
        status nothing is done. Otherwise the row and the object are read again under a lock, so
        concurrent publishers (event handlers, the resync) never write an older state over a newer
        one or post the same phase change twice.
        """
        if body is not None:
            row = self._row(job_id)
            if row is None or not self._status_change(row, body, job_name, waiting_message):
                return
        with self._publish_lock:
            row = self._row(job_id)
            if row is None or not row.k8s_namespace or not row.k8s_name:
                return
            fresh = self.kube.get_indexing_request(row.k8s_namespace, row.k8s_name)
            if fresh is None:
                return
            wanted = self._status_change(row, fresh, job_name, waiting_message)
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
            generation=_meta(body).get("generation"),
            waiting_message=waiting_message,
        )
        return wanted if reflection.status_differs(previous, wanted) else None

    # --- IndexingRequest created, resumed or deleted ----------------------------------------------

    def admit(self, body: Body) -> None:
        """Validate a request and make sure its job row exists (adopting spec.jobId's row)."""
        meta = _meta(body)
        if meta.get("deletionTimestamp"):
            return
        ref = ObjectRef.of(body)
        status = body.get("status") or {}
        if status.get("phase") in reflection.TERMINAL_PHASES:
            return
        try:
            spec = parse_spec(body.get("spec"), workspace_root=self._workspace_root())
        except InvalidInput as exc:
            self._refuse(body, str(exc), fail_row=True)
            return
        job_id = spec.job_id or derived_job_id(ref)
        jl = job_log(job_id, f"{ref.namespace}/{ref.name}")
        row = self._row(job_id)
        if row is not None:
            problem = self._adoption_problem(row, spec, ref)
            if problem is not None:
                self._refuse(body, problem, fail_row=False)
                return
            if (row.k8s_namespace, row.k8s_name) != (ref.namespace, ref.name):
                self.jobs.set_kubernetes_names(job_id, namespace=ref.namespace, name=ref.name)
            jl.info("adopted the existing %s job row", row.status.value)
        else:
            row = self.jobs.create(
                job_id=job_id,
                repo_path=spec.repo_key,
                project_id=spec.project_id,
                force_reindex=spec.force_reindex,
                timeout_seconds=spec.timeout_seconds or self.settings.jobs.timeout_seconds,
                source_git_url=spec.git_url,
                source_git_ref=spec.git_ref,
                k8s_namespace=ref.namespace,
                k8s_name=ref.name,
            )
            jl.info("accepted: job row created for %s in project %s", spec.repo_key, spec.project_id)
        self.publish(job_id, body=body)
        self.wake()

    def _adoption_problem(self, row: Job, spec: RequestSpec, ref: ObjectRef) -> str | None:
        if row.project_id != spec.project_id:
            return (
                f"spec.jobId {row.id} names a job of project {row.project_id!r}, "
                f"not of spec.projectId {spec.project_id!r}"
            )
        if row.repo_path != spec.repo_key:
            return f"spec.jobId {row.id} names a job for {row.repo_path!r}, not for {spec.repo_key!r}"
        if (
            row.k8s_name
            and (row.k8s_namespace, row.k8s_name) != (ref.namespace, ref.name)
            and row.k8s_namespace is not None
            and self.kube.get_indexing_request(row.k8s_namespace, row.k8s_name) is not None
        ):
            return (
                f"spec.jobId {row.id} already belongs to IndexingRequest {row.k8s_namespace}/{row.k8s_name}"
            )
        return None

    def _refuse(self, body: Body, message: str, *, fail_row: bool) -> None:
        """An invalid request: status Failed with the reason; its job row (if it names one) failed."""
        ref = ObjectRef.of(body)
        spec = _spec_of(body)
        try:
            raw = spec.get("jobId")
            job_id: uuid.UUID | None = validate_job_id(raw) if isinstance(raw, str) and raw else None
        except InvalidInput:
            job_id = None
        jl = job_log(job_id, f"{ref.namespace}/{ref.name}")
        jl.warning("refused: %s", message)
        if fail_row and job_id is not None:
            row = self._row(job_id)
            if row is None:
                row = self.jobs.create(
                    job_id=job_id,
                    repo_path=_best_effort_repo(spec),
                    project_id=_best_effort_project(spec),
                    k8s_namespace=ref.namespace,
                    k8s_name=ref.name,
                )
            if row.k8s_name in (None, ref.name):
                self.jobs.fail(job_id, f"invalid IndexingRequest {ref.namespace}/{ref.name}: {message}")
        previous = body.get("status") or {}
        wanted = reflection.invalid_status(
            message, job_id=job_id, previous=previous, generation=_meta(body).get("generation")
        )
        if reflection.status_differs(previous, wanted):
            try:
                self.kube.patch_indexing_request_status(ref.namespace, ref.name, wanted)
            except NotFound:
                return
            if previous.get("phase") != "Failed":
                self.kube.post_event(ref, reason="InvalidSpec", message=message, warning=True)

    def request_deleted(self, body: Body) -> None:
        """Deleting an IndexingRequest cancels its job: the row says cancelled, the Job goes."""
        ref = ObjectRef.of(body)
        spec = _spec_of(body)
        raw_id = (body.get("status") or {}).get("jobId") or spec.get("jobId")
        try:
            job_id = validate_job_id(raw_id) if raw_id else derived_job_id(ref)
        except InvalidInput:
            return
        jl = job_log(job_id, f"{ref.namespace}/{ref.name}")
        conditions = (body.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Accepted" and c.get("status") == "False" for c in conditions):
            return  # refused: it never had a Job, and its jobId may name another request's job
        reason = f"the IndexingRequest {ref.namespace}/{ref.name} was deleted"
        try:
            row = self._row(job_id)
            ours = row is not None and (row.k8s_namespace, row.k8s_name) == (ref.namespace, ref.name)
            if ours and self.jobs.cancel(job_id, reason):
                self.metrics.transitions.labels(status="cancelled").inc()
                jl.info("cancelled: its IndexingRequest was deleted")
        finally:
            # Even when the database is down: the Job must not run on (the resync cancels the row later).
            if self.kube.delete_job(ref.namespace, job_name(job_id)):
                jl.info("deleted Job %s (propagation Background)", job_name(job_id))
            self.wake()

    # --- Jobs and pods ----------------------------------------------------------------------------

    def job_changed(self, job: Body, *, deleted: bool = False) -> None:
        job_id = reflection.job_id_of(job)
        if job_id is None:
            return
        namespace, name = _key(job)
        jl = job_log(job_id, None)
        row = self._row(job_id)
        if row is None:
            jl.warning("Job %s/%s has no job row; ignoring it", namespace, name)
            return
        outcome = reflection.job_outcome(job)
        if outcome is None and not deleted:
            return
        if row.status.is_terminal:
            self.publish(job_id, job_name=name)
            if outcome is not None or deleted:
                self.wake()
            return
        if outcome == "Complete":
            if row.status is JobStatus.PENDING:
                self.jobs.mark_running(job_id, runner=f"job/{namespace}/{name}")
            if self.jobs.complete(job_id):
                self.metrics.transitions.labels(status="completed").inc()
                self._observe_latency(
                    "Succeeded",
                    reflection.parse_time(
                        (reflection.condition(job, "Complete") or {}).get("lastTransitionTime")
                    ),
                )
                jl.info("completed (Job %s/%s Complete)", namespace, name)
        elif outcome == "Failed":
            pods = self.kube.list_pods(namespace, label_selector=f"{JOB_ID_LABEL}={job_id}")
            reason = reflection.failure_reason(job, pods)
            if self.jobs.fail(job_id, reason):
                self.metrics.transitions.labels(status="failed").inc()
                finished = [reflection.finished_at(p) for p in pods]
                self._observe_latency("Failed", max((f for f in finished if f), default=None))
                jl.warning("failed: %s", reason)
        else:  # deleted before it finished
            owner_name, owner_uid = _owner_request(job) or ("?", None)
            request = self.kube.get_indexing_request(namespace, owner_name) if owner_uid else None
            owner_gone = (
                request is None
                or _meta(request).get("uid") != owner_uid
                or bool(_meta(request).get("deletionTimestamp"))
            )
            if owner_gone:
                # Its IndexingRequest is gone: the garbage collector removed the Job; a cancel.
                if self.jobs.cancel(job_id, f"the IndexingRequest {namespace}/{owner_name} was deleted"):
                    self.metrics.transitions.labels(status="cancelled").inc()
                    jl.info("cancelled: its IndexingRequest was deleted")
            elif self.jobs.fail(job_id, f"the Job {namespace}/{name} was deleted before it finished"):
                self.metrics.transitions.labels(status="failed").inc()
                jl.warning("failed: the Job %s/%s was deleted before it finished", namespace, name)
        self.publish(job_id, job_name=name)
        self.wake()  # a slot is free

    def pod_changed(self, pod: Body, *, deleted: bool = False) -> None:
        job_id = reflection.job_id_of(pod)
        if job_id is None or deleted:
            return
        namespace, name = _key(pod)
        phase = reflection.pod_phase(pod)
        if phase in ("Running", "Succeeded", "Failed"):
            # The pod has started (kwok may skip straight past Running): the row is running.
            row = self._row(job_id)
            if row is None or row.status.is_terminal:
                return
            changed = False
            runner = f"pod/{namespace}/{name}"
            if row.status is JobStatus.PENDING and self.jobs.mark_running(job_id, runner=runner):
                changed = True
                self.metrics.transitions.labels(status="running").inc()
                self._observe_latency("Running", reflection.running_since(pod))
                job_log(job_id).info("running (pod %s/%s %s)", namespace, name, phase)
            term = reflection.terminated_state(pod)
            if phase == "Succeeded" and term is not None and term.get("exitCode") == 0:
                # Final for a one-pod Job (backoffLimit 0): no need to wait for the Job controller
                # to set Complete, which it does about half a second later. Failures do wait: the
                # podFailurePolicy decides whether a failed pod fails the Job or is replaced.
                if self.jobs.complete(job_id):
                    changed = True
                    self.metrics.transitions.labels(status="completed").inc()
                    self._observe_latency("Succeeded", reflection.finished_at(pod))
                    job_log(job_id).info("completed (pod %s/%s Succeeded)", namespace, name)
                self.wake()
            if changed or phase == "Running":  # the indexer may have marked it running before we did
                self.publish(job_id)
        elif phase == "Pending":
            waiting = self._waiting_message(pod)
            row = self._row(job_id)
            if waiting is not None and row is not None and row.status is JobStatus.PENDING:
                self.publish(job_id, waiting_message=waiting)

    def _waiting_message(self, pod: Body | None) -> str | None:
        problem = reflection.waiting_problem(pod) if pod is not None else None
        if problem is None or pod is None:
            return None
        name = _meta(pod).get("name")
        return (
            f"pod {name} cannot start yet ({problem[0]}: {problem[1]}); it fails after "
            f"{self.settings.kubernetes.pod_pending_timeout_seconds} s in Pending"
        )

    # --- the level-triggered loop -----------------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.resync()
            except UNREACHABLE as exc:
                # Expected during an outage, once a second: one line each, not a traceback.
                self.metrics.resync_errors.inc()
                log.warning(
                    "resync failed: %s; retrying in %.1f s",
                    describe_unreachable(exc),
                    self.settings.operator.resync_seconds,
                )
            except Exception:
                self.metrics.resync_errors.inc()
                log.exception("resync failed; retrying in %.1f s", self.settings.operator.resync_seconds)
            self._wake.wait(self.settings.operator.resync_seconds)
            self._wake.clear()

    def health(self) -> dict[str, Any]:
        """For the liveness probe: fails when the resync loop has not succeeded for a long time."""
        limit = max(120.0, 10 * self.settings.operator.resync_seconds)
        if self.last_resync_ok is None:
            return {"resync": "starting"}
        age = time.monotonic() - self.last_resync_ok
        if age > limit:
            raise RuntimeError(f"no successful resync for {age:.0f} s")
        return {"last_resync_seconds_ago": round(age, 1)}

    def resync(self) -> None:
        with self._resync_lock:
            started = time.monotonic()
            self._resync()
            self.metrics.set_job_counts(self.jobs.count_by_status())
            self.last_resync_ok = time.monotonic()
            self.metrics.resync_seconds.observe(self.last_resync_ok - started)

    def _resync(self) -> None:
        requests = self.kube.list_indexing_requests(self.namespace)
        k8s_jobs = self.kube.list_jobs(self.namespace, label_selector=MANAGED_SELECTOR)
        pods = self.kube.list_pods(self.namespace, label_selector=MANAGED_SELECTOR)
        pending_pods = {reflection.job_id_of(p): p for p in pods if reflection.pod_phase(p) == "Pending"}
        by_key = {_key(r): r for r in requests}
        jobs_by_id: dict[uuid.UUID, dict[str, Any]] = {}
        for job in k8s_jobs:
            job_id = reflection.job_id_of(job)
            if job_id is not None:
                jobs_by_id[job_id] = job
        now = datetime.now(UTC)

        # 1. Finished Jobs whose rows still say pending/running (an event missed while down).
        for job_id, job in jobs_by_id.items():
            if reflection.job_outcome(job) is not None:
                row = self._row(job_id)
                if row is not None and row.status in ACTIVE_STATUSES:
                    self.job_changed(job)

        # 2. Pods stuck in Pending: fail the job, delete the Job (they never count as retries).
        stopped: set[uuid.UUID] = set()
        for pod in pods:
            job_id = reflection.job_id_of(pod)
            stuck_job = jobs_by_id.get(job_id) if job_id else None
            if job_id is None or stuck_job is None or not reflection.job_is_active(stuck_job):
                continue
            if reflection.pending_too_long(pod, self.settings.kubernetes.pod_pending_timeout_seconds, now):
                self._fail_stuck(job_id, pod, stuck_job)
                stopped.add(job_id)

        # 3. Each request: admit it if no handler has yet; converge its status; notice lost Jobs.
        for request in requests:
            if _meta(request).get("deletionTimestamp"):
                continue
            status = request.get("status") or {}
            if status.get("phase") in reflection.TERMINAL_PHASES:
                continue
            raw_id = status.get("jobId")
            row = self._row(uuid.UUID(raw_id)) if _is_uuid(raw_id) else None
            if row is None:
                self.admit(request)
                continue
            if (
                row.status in ACTIVE_STATUSES
                and row.id not in jobs_by_id
                and row.id not in stopped
                and status.get("jobName")
            ):
                if self.jobs.fail(
                    row.id,
                    f"the Job {status['jobName']} disappeared before it finished "
                    "(deleted by someone, or removed after JOB_TTL_SECONDS_AFTER_FINISHED)",
                ):
                    job_log(row.id).warning("failed: its Job %s disappeared", status["jobName"])
                row = self.jobs.get(row.id)
            waiting = None
            if row.status is JobStatus.PENDING:
                waiting = self._waiting_message(pending_pods.get(row.id))
            self.publish(row.id, body=request, waiting_message=waiting)

        # 4. Active rows whose IndexingRequest is gone (a DELETED event missed while down).
        for row in self._active_rows():
            if not self._in_scope(row.k8s_namespace) or not row.k8s_name:
                continue
            if (row.k8s_namespace, row.k8s_name) in by_key:
                continue
            assert row.k8s_namespace is not None
            # Read it again: the MCP launcher records the names only after creating the object,
            # which may be after our list.
            if self.kube.get_indexing_request(row.k8s_namespace, row.k8s_name) is None:
                reason = f"the IndexingRequest {row.k8s_namespace}/{row.k8s_name} was deleted"
                if self.jobs.cancel(row.id, reason):
                    job_log(row.id).info("cancelled: its IndexingRequest is gone")
                self.kube.delete_job(row.k8s_namespace, job_name(row.id))

        # 5. Admission: oldest pending rows first, while fewer than the limit of Jobs are active.
        active = sum(
            1 for job_id, job in jobs_by_id.items() if reflection.job_is_active(job) and job_id not in stopped
        )
        free = self.settings.jobs.max_concurrent - active
        if free <= 0:
            return
        for row in self.jobs.pending_in_order(limit=10_000):
            if free <= 0:
                break
            key = (row.k8s_namespace or "", row.k8s_name or "")
            pending_request = by_key.get(key)
            if pending_request is None or row.id in jobs_by_id:
                continue
            if _meta(pending_request).get("deletionTimestamp"):
                continue
            status = pending_request.get("status") or {}
            if status.get("jobId") != str(row.id) or status.get("phase") in reflection.TERMINAL_PHASES:
                continue
            if self._start(pending_request, row):
                free -= 1

    def _active_rows(self) -> list[Job]:
        rows = self.jobs.list(status=JobStatus.PENDING, limit=10_000)
        return rows + self.jobs.list(status=JobStatus.RUNNING, limit=10_000)

    def _start(self, request: Body, row: Job) -> bool:
        """Create the Job of a pending row; True when the Job exists afterwards."""
        ref = ObjectRef.of(request)
        jl = job_log(row.id, f"{ref.namespace}/{ref.name}")
        try:
            spec = parse_spec(request.get("spec"), workspace_root=self._workspace_root())
        except InvalidInput as exc:
            self._refuse(request, str(exc), fail_row=True)
            return False
        meta = _meta(request)
        manifest = build_job(
            request=ref,
            spec=spec,
            job_id=row.id,
            settings=self.settings,
            test_hooks=self.test_hooks,
            request_labels=meta.get("labels"),
            request_annotations=meta.get("annotations"),
        )
        name = manifest["metadata"]["name"]
        try:
            self.kube.create_job(ref.namespace, manifest)
            created = True
        except Conflict:
            created = False  # made before a restart, or by a racing event: the same Job
        self.jobs.set_kubernetes_names(row.id, job_name=name)
        if created:
            self.metrics.jobs_created.inc()
            jl.info("created Job %s/%s", ref.namespace, name)
            self.kube.post_event(ref, reason="JobCreated", message=f"job {row.id}: created Job {name}")
        self.publish(row.id, job_name=name)
        return True

    def _fail_stuck(self, job_id: uuid.UUID, pod: Body, job: Body) -> None:
        reason = reflection.stuck_pending_reason(pod, self.settings.kubernetes.pod_pending_timeout_seconds)
        namespace, name = _key(job)
        jl = job_log(job_id)
        if self.jobs.fail(job_id, reason):
            self.metrics.transitions.labels(status="failed").inc()
            jl.warning("failed: %s", reason)
        if self.kube.delete_job(namespace, name):
            jl.info("deleted Job %s/%s (propagation Background)", namespace, name)
        self.publish(job_id, job_name=name)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return value is not None


def _spec_of(body: Body) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _best_effort_repo(spec: Mapping[str, Any]) -> str:
    source = spec.get("source")
    source = source if isinstance(source, Mapping) else {}
    git = source.get("git")
    git = git if isinstance(git, Mapping) else {}
    value = source.get("path") or git.get("url") or "(invalid source)"
    return str(value)[:4096]


def _best_effort_project(spec: Mapping[str, Any]) -> str:
    try:
        return validate_project_id(spec.get("projectId"))
    except InvalidInput:
        return "default"


__all__ = ["KubeApi", "KubernetesError", "Reconciler", "derived_job_id", "job_log"]
