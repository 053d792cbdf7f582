"""What the operator does when an event arrives: IndexingRequest -> job row, and Job/pod -> row -> status.

Two ways in, one set of idempotent steps:

- Edge-triggered, for latency (this module): kopf hands every IndexingRequest, Job and pod event
  to `admit`, `request_deleted`, `job_changed` and `pod_changed`, which reflect that one object.
- Level-triggered, for correctness (`resync`): a loop that reads everything (from kopf's indices,
  `cluster_view`) and converges it, and the only place that creates Jobs (admission under
  MAX_CONCURRENT_INDEXING_JOBS, one active job per repository and project, oldest first).

Only the leader acts (`leadership`): on the other replicas every handler and the loop return at
once, so two replicas never create more Jobs than the limit nor post an Event twice.

Why both ways are safe together, and across restarts: every row change is a conditional transition
of mcp_server.core.jobs (the first to land wins, a terminal row never changes), Job names are derived
from the job id (a second create is a 409), and status patches are recomputed from the row.
Nothing is remembered in memory that a restart would need.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from codebase_operator import reflection
from codebase_operator.cluster_view import ClusterView
from codebase_operator.jobs_builder import JOB_ID_LABEL, job_name
from codebase_operator.metrics import OperatorMetrics
from codebase_operator.objects import (
    Body,
    KubeApi,
    derived_job_id,
    job_log,
    key,
    meta,
    owner_request,
    spec_of,
)
from codebase_operator.publishing import Publisher
from codebase_operator.resync import Resync
from codebase_operator.spec import RequestSpec, parse_spec
from mcp_server.core import lifecycle
from mcp_server.core.errors import InvalidInput, JobNotFound
from mcp_server.core.jobs import Job, JobStatus, JobStore
from mcp_server.core.lifecycle import Outcome
from mcp_server.core.settings import Settings
from mcp_server.core.validation import redact_userinfo, validate_job_id, validate_project_id
from mcp_server.index.store import IndexStore
from mcp_server.runners.kube_api import KubernetesError, NotFound, ObjectRef


class Leader(Protocol):
    def is_leader(self) -> bool: ...


class _Always:
    def is_leader(self) -> bool:
        return True


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
        leader: Leader | None = None,
    ) -> None:
        self.settings = settings
        self.test_hooks = test_hooks
        self.jobs = jobs
        self.kube = kube
        self.metrics = metrics
        self.namespace = namespace  # None: all namespaces
        self.leader: Leader = leader or _Always()
        self._wake = threading.Event()
        self.view = ClusterView(kube, namespace)
        self.publisher = Publisher(jobs, kube)
        self.publish = self.publisher.publish
        self.loop = Resync(self)

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

    def is_leader(self) -> bool:
        return self.leader.is_leader()

    def resync(self) -> None:
        self.loop.resync()

    def run_forever(self, stop: threading.Event) -> None:
        self.loop.run_forever(stop, self._wake)

    def health(self) -> dict[str, Any]:
        return self.loop.health()

    # --- IndexingRequest created, resumed or deleted ----------------------------------------------

    def admit(self, body: Body) -> None:
        """Validate a request and make sure its job row exists (adopting spec.jobId's row)."""
        if meta(body).get("deletionTimestamp"):
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
                # Every event of the request comes here; say it once, when the row is adopted.
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
                source_git_secret=spec.git_secret,
                k8s_namespace=ref.namespace,
                k8s_name=ref.name,
                shards=spec.shards,
            )
            jl.info(
                "accepted: job row created for %s in project %s%s",
                redact_userinfo(spec.repo_key),
                spec.project_id,
                f" ({spec.shards} shards)" if spec.shards > 1 else "",
            )
        if spec.cancelled:
            self.cancel_as_asked(ref, job_id)
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
        if row.shards != spec.shards:
            return f"spec.jobId {row.id} names a job of {row.shards} shards, not of spec.shards {spec.shards}"
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
        spec = spec_of(body)
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
            message, job_id=job_id, previous=previous, generation=meta(body).get("generation")
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
        spec = spec_of(body)
        raw_id = (body.get("status") or {}).get("jobId") or spec.get("jobId")
        try:
            job_id = validate_job_id(raw_id) if raw_id else derived_job_id(ref)
        except InvalidInput:
            return
        conditions = (body.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Accepted" and c.get("status") == "False" for c in conditions):
            return  # refused: it never had a Job, and its jobId may name another request's job
        self.cancel_deleted(ref.namespace, ref.name, job_id)

    def cancel_deleted(self, namespace: str, name: str, job_id: uuid.UUID) -> None:
        """The request is gone: from its DELETED event, or from the resync when that event was missed."""
        self.cancel_request(namespace, name, job_id, f"the IndexingRequest {namespace}/{name} was deleted")

    def cancel_as_asked(self, ref: ObjectRef, job_id: uuid.UUID) -> None:
        """The request's spec.status says Cancelled: from its event, or from the resync when that
        event was missed."""
        self.cancel_request(
            ref.namespace,
            ref.name,
            job_id,
            f"spec.status of the IndexingRequest {ref.namespace}/{ref.name} is Cancelled",
        )

    def cancel_request(self, namespace: str, name: str, job_id: uuid.UUID, reason: str) -> None:
        """The request's job ends cancelled (if the row is this request's) and its Job goes: the
        request was deleted (seen as an event, or by the resync when the event was missed), or its
        spec.status says Cancelled (then its phase shows it)."""
        jl = job_log(job_id, f"{namespace}/{name}")
        try:
            row = self._row(job_id)
            ours = row is not None and (row.k8s_namespace, row.k8s_name) == (namespace, name)
            if ours and self.jobs.cancel(job_id, reason):
                self.metrics.transitions.labels(status="cancelled").inc()
                jl.info("cancelled: %s", reason)
        finally:
            # Even when the database is down: the Job must not run on (the resync cancels the row later).
            if self.kube.delete_job(namespace, job_name(job_id)):
                self.view.job_deleted(namespace, job_name(job_id))
                jl.info("deleted Job %s (propagation Background)", job_name(job_id))
            self.wake()

    # --- Jobs and pods ----------------------------------------------------------------------------

    def record(
        self, job_id: uuid.UUID, outcome: Outcome, *, since: datetime | None = None, runner: str | None = None
    ) -> bool:
        """The one way the operator ends a job: the transition, its metric and its log line."""

        def recorded(o: Outcome) -> None:
            status = o.status.value
            self.metrics.transitions.labels(status=status).inc()
            if o.status is not JobStatus.CANCELLED:
                self._observe_latency("Succeeded" if o.status is JobStatus.COMPLETED else "Failed", since)
            line = f"{status}" + (f": {o.reason}" if o.reason else "")
            if o.status is JobStatus.FAILED:
                job_log(job_id).warning(line)
            else:
                job_log(job_id).info(line)

        return lifecycle.record(self.jobs, job_id, outcome, runner=runner, on_recorded=recorded)

    def release_job(self, job: Body) -> None:
        """A finished Job whose outcome is recorded: from now on ttlSecondsAfterFinished may delete
        it. Jobs are created without a TTL, so an operator outage of any length cannot lose an
        outcome to the TTL controller (it would delete the Job before anyone read it)."""
        if (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
            return
        namespace, name = key(job)
        ttl = self.settings.kubernetes.job_ttl_seconds_after_finished
        with contextlib.suppress(NotFound):  # deleted meanwhile: nothing left to clean up
            self.kube.patch_job(namespace, name, {"spec": {"ttlSecondsAfterFinished": ttl}})

    def job_changed(self, job: Body, *, deleted: bool = False) -> None:
        job_id = reflection.job_id_of(job)
        if job_id is None:
            return
        namespace, name = key(job)
        row = self._row(job_id)
        if row is None:
            job_log(job_id).warning("Job %s/%s has no job row; ignoring it", namespace, name)
            return
        finished = reflection.job_outcome(job)
        if finished is None and not deleted:
            return
        if not row.status.is_terminal:
            self.record(
                job_id,
                self._outcome_of_job(job, finished),
                since=self._finished_since(job, finished),
                runner=f"job/{namespace}/{name}",
            )
        if finished is not None and not deleted:
            self.release_job(job)
        self.publish(job_id, job_name=name)
        self.wake()  # a slot is free

    def _finished_since(self, job: Body, finished: str | None) -> datetime | None:
        if finished is None:
            return None
        return reflection.parse_time((reflection.condition(job, finished) or {}).get("lastTransitionTime"))

    def _outcome_of_job(self, job: Body, finished: str | None) -> Outcome:
        namespace, name = key(job)
        if finished == "Complete":
            job_id = reflection.job_id_of(job)
            shards = int((job.get("spec") or {}).get("completions") or 1)
            published = (
                shards > 1 and job_id is not None and IndexStore(self.jobs.engine).published_by(job_id)
            )
            return lifecycle.succeeded(shards, published=published)
        if finished == "Failed":
            job_id = reflection.job_id_of(job)
            pods = self.kube.list_pods(namespace, label_selector=f"{JOB_ID_LABEL}={job_id}")
            return Outcome.failed(reflection.failure_reason(job, pods))
        # Deleted before it finished.
        owner_name, owner_uid = owner_request(job) or ("?", None)
        request = self.kube.get_indexing_request(namespace, owner_name) if owner_uid else None
        owner_gone = (
            request is None
            or meta(request).get("uid") != owner_uid
            or bool(meta(request).get("deletionTimestamp"))
        )
        if owner_gone:
            # Its IndexingRequest is gone: the garbage collector removed the Job; a cancel.
            return Outcome.cancelled(f"the IndexingRequest {namespace}/{owner_name} was deleted")
        return Outcome.failed(f"the Job {namespace}/{name} was deleted before it finished")

    def pod_changed(self, pod: Body, *, deleted: bool = False) -> None:
        job_id = reflection.job_id_of(pod)
        if job_id is None or deleted:
            return
        namespace, name = key(pod)
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
            one_pod = row.shards == 1  # a shard's pod succeeding ends only its part of the run
            if one_pod and phase == "Succeeded" and term is not None and term.get("exitCode") == 0:
                # Final for a one-pod Job (backoffLimit 0): no need to wait for the Job controller
                # to set Complete, which it does about half a second later. Failures do wait: the
                # podFailurePolicy decides whether a failed pod fails the Job or is replaced.
                if self.record(job_id, Outcome.completed(), since=reflection.finished_at(pod)):
                    changed = True
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
        name = meta(pod).get("name")
        return (
            f"pod {name} cannot start yet ({problem[0]}: {problem[1]}); it fails after "
            f"{self.settings.kubernetes.pod_pending_timeout_seconds} s in Pending"
        )


def _best_effort_repo(spec: Mapping[str, Any]) -> str:
    source = spec.get("source")
    source = source if isinstance(source, Mapping) else {}
    git = source.get("git")
    git = git if isinstance(git, Mapping) else {}
    value = source.get("path") or redact_userinfo(str(git.get("url") or "")) or "(invalid source)"
    return str(value)[:4096]


def _best_effort_project(spec: Mapping[str, Any]) -> str:
    try:
        return validate_project_id(spec.get("projectId"))
    except InvalidInput:
        return "default"


__all__ = ["KubeApi", "KubernetesError", "Reconciler", "derived_job_id", "job_log"]
