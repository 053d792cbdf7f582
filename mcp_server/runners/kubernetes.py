"""The Kubernetes launcher: a job becomes an IndexingRequest; the operator does the rest.

    MCP tool --row (pending)--> submit() --IndexingRequest (spec.jobId = row id)--> operator
                                                                     '--> batch/v1 Job --> pod

`submit` returns as soon as the API server has accepted the object. The operator adopts the row
by its id, creates the Job when a slot is free and reflects the pod's progress into the row, so
the MCP server needs no watch and may exit at any time. `cancel` deletes the object; its Job and
pods go with it (the operator deletes the Job, and the garbage collector would anyway).
"""

from __future__ import annotations

import logging
from typing import Any

from mcp_server.core.errors import LauncherError
from mcp_server.core.jobs import Job, JobStore
from mcp_server.core.settings import Settings
from mcp_server.runners.kube_api import API_VERSION, KIND, Conflict, KubeClient

log = logging.getLogger(__name__)

MIN_TIMEOUT_SECONDS = 60  # the CRD's bounds on spec.timeoutSeconds
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


def request_name(job: Job) -> str:
    return f"index-{job.id}"


def request_body(job: Job, *, default_timeout: int) -> dict[str, Any]:
    timeout = min(MAX_TIMEOUT_SECONDS, max(MIN_TIMEOUT_SECONDS, job.timeout_seconds or default_timeout))
    source: dict[str, Any]
    if job.source_git_url:
        git: dict[str, Any] = {"url": job.source_git_url}
        if job.source_git_ref:
            git["ref"] = job.source_git_ref
        if job.source_git_secret:
            git["secretRef"] = {"name": job.source_git_secret}
        source = {"git": git}
    else:
        source = {"path": job.repo_path}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": request_name(job),
            "labels": {
                "app.kubernetes.io/name": "codebase-mcp",
                "app.kubernetes.io/created-by": "codebase-mcp-server",
                "codebase-mcp.dev/project": job.project_id,
            },
        },
        "spec": {
            "projectId": job.project_id,
            "source": source,
            "jobId": str(job.id),
            "forceReindex": job.force_reindex,
            "timeoutSeconds": timeout,
            # The operator runs a sharded job as an Indexed Job and checks this against the row.
            **({"shards": job.shards} if job.shards > 1 else {}),
        },
    }


class KubernetesLauncher:
    def __init__(self, settings: Settings, jobs: JobStore, *, kube: KubeClient | None = None) -> None:
        self.settings = settings
        self.jobs = jobs
        self._kube = kube

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            self._kube = KubeClient()
        return self._kube

    def submit(self, job: Job) -> None:
        namespace = self.settings.kubernetes.namespace
        body = request_body(job, default_timeout=self.settings.jobs.timeout_seconds)
        name = body["metadata"]["name"]
        try:
            self.kube.create_indexing_request(namespace, body)
        except Conflict:
            pass  # submitted before (a retried call): the same object, named after the job id
        except LauncherError as exc:
            # Without the object no operator will ever pick the row up: say so in the row.
            self.jobs.fail(job.id, f"could not create the IndexingRequest {namespace}/{name}: {exc}")
            raise LauncherError(f"could not start job {job.id} on Kubernetes: {exc}") from None
        self.jobs.set_kubernetes_names(job.id, namespace=namespace, name=name)
        log.info("job %s: IndexingRequest %s/%s created", job.id, namespace, name)

    def cancel(self, job: Job) -> bool:
        namespace = job.k8s_namespace or self.settings.kubernetes.namespace
        name = job.k8s_name or request_name(job)
        cancelled = self.jobs.cancel(job.id)
        try:
            self.kube.cancel_indexing_request(namespace, name)
        except LauncherError as exc:
            raise LauncherError(
                f"job {job.id} is marked cancelled, but its IndexingRequest {namespace}/{name} could not "
                f"be cancelled: {exc}"
            ) from None
        # The request stays, with phase Cancelled (kubectl get ir); deleting it is the user's call.
        log.info(
            "job %s: cancelled; IndexingRequest %s/%s set to spec.status Cancelled", job.id, namespace, name
        )
        return cancelled

    def reconcile(self) -> None:
        """Nothing to do here: the operator reconciles Kubernetes jobs."""
