"""The only module that talks to the Kubernetes API (the launcher and the operator's actions).

Objects go in and come out as plain JSON dictionaries (camelCase keys, exactly what the API server
and kopf's handlers show), never as the client library's generated models, so the callers, their
tests and the YAML in deploy/ all read the same shapes.

Errors are translated here into the project's own tree: every failure is a `KubernetesError` (a
`LauncherError`) with a readable message; `NotFound`, `Conflict` and `Unavailable` let callers tell
"already gone", "already exists" and "try again later" apart without looking at HTTP codes.
(kopf's own watch streams use kopf's client; this module is for the actions.)
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mcp_server.core.errors import LauncherError

log = logging.getLogger(__name__)

GROUP = "codebase-mcp.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "indexingrequests"
KIND = "IndexingRequest"

# (connect, read) seconds for every API call: a hung API server must not hang a handler or a tool.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

Body = dict[str, Any]


KUBERNETES_EXTRA_MISSING = (
    "the Kubernetes client is not installed (it is an optional extra): pip install 'codebase-mcp[kubernetes]'"
)


class KubernetesError(LauncherError):
    """The Kubernetes API refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubernetesError):
    """The object does not exist (HTTP 404)."""


class Conflict(KubernetesError):
    """The object already exists, or was changed meanwhile (HTTP 409)."""


class Unavailable(KubernetesError):
    """The API server could not be reached or timed out; retrying later may work."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """What an Event's involvedObject and an ownerReference need to name an object."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectRef:
        meta = body.get("metadata") or {}
        return cls(
            api_version=str(body.get("apiVersion", API_VERSION)),
            kind=str(body.get("kind", KIND)),
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
        )


def load_configuration(kubeconfig: str | None = None) -> Any:
    """In-cluster credentials when running in a pod, else KUBECONFIG (or ~/.kube/config)."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise KubernetesError(KUBERNETES_EXTRA_MISSING) from None

    configuration = client.Configuration()
    try:
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG")
        if kubeconfig is None and in_cluster:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            # KUBECONFIG read now, not when the client library was imported (it caches it then).
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig or os.environ.get("KUBECONFIG"), client_configuration=configuration
            )
    except (config.ConfigException, OSError, TypeError, ValueError) as exc:
        raise KubernetesError(
            f"no usable Kubernetes credentials (in-cluster service account or KUBECONFIG): {exc}"
        ) from None
    # Handlers and the resync loop run in several threads; urllib3's default pool of 4 would warn.
    configuration.connection_pool_maxsize = 16
    return configuration


def _message(exc: Any) -> tuple[int | None, str, str]:
    status = getattr(exc, "status", None)
    reason = str(getattr(exc, "reason", "") or "")
    text = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            payload = json.loads(body)
            text = str(payload.get("message") or "")
            reason = str(payload.get("reason") or reason)
        except (ValueError, AttributeError):
            text = str(body)[:500]
    return status, reason, text or reason or str(exc)


def translate(exc: Exception, action: str) -> KubernetesError:
    """One Kubernetes client failure as the project's exception, with `action` saying what failed."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        status, reason, text = _message(exc)
        message = f"Kubernetes API: {action} failed ({status} {reason}): {text}"
        if status == 404:
            return NotFound(message, status=status, reason=reason)
        if status == 409:
            return Conflict(message, status=status, reason=reason)
        if status is not None and (status >= 500 or status == 429):
            return Unavailable(message, status=status, reason=reason)
        if status in (401, 403):
            message += " (check the ServiceAccount's RBAC; see deploy/rbac/)"
        return KubernetesError(message, status=status, reason=reason)
    return Unavailable(f"Kubernetes API: {action} failed: cannot reach the API server ({exc})")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeClient:
    """Synchronous, thread-safe access to the few API calls the product makes."""

    def __init__(self, configuration: Any = None, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        from kubernetes import client

        self._api_client = client.ApiClient(configuration or load_configuration())
        self._custom = client.CustomObjectsApi(self._api_client)
        self._batch = client.BatchV1Api(self._api_client)
        self._core = client.CoreV1Api(self._api_client)
        self._coordination = client.CoordinationV1Api(self._api_client)
        self._timeout = timeout

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]

    def _call(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Body:
        import urllib3

        try:
            response = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, action) from None
        except Exception as exc:
            from kubernetes.client.exceptions import ApiException

            if isinstance(exc, ApiException):
                raise translate(exc, action) from None
            raise
        if not data:
            return {}
        decoded: Body = json.loads(data)
        return decoded

    # --- IndexingRequests -----------------------------------------------------------------------

    def create_indexing_request(self, namespace: str, body: Mapping[str, Any]) -> Body:
        return self._call(
            f"create IndexingRequest in {namespace}",
            self._custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            dict(body),
        )

    def get_indexing_request(self, namespace: str, name: str) -> Body | None:
        try:
            return self._call(
                f"get IndexingRequest {namespace}/{name}",
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
            )
        except NotFound:
            return None

    def list_indexing_requests(self, namespace: str | None) -> list[Body]:
        if namespace is None:
            result = self._call(
                "list IndexingRequests", self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL
            )
        else:
            result = self._call(
                f"list IndexingRequests in {namespace}",
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
            )
        return list(result.get("items") or [])

    def cancel_indexing_request(self, namespace: str, name: str) -> bool:
        """Set its spec.status to Cancelled (the operator stops the run, the request stays and shows
        phase Cancelled); False when it was already gone."""
        try:
            self._call(
                f"cancel IndexingRequest {namespace}/{name}",
                self._custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"spec": {"status": "Cancelled"}},
            )
        except NotFound:
            return False
        return True

    def patch_indexing_request_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Body:
        return self._call(
            f"update the status of IndexingRequest {namespace}/{name}",
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": dict(status)},
        )

    # --- Jobs and pods --------------------------------------------------------------------------

    def create_job(self, namespace: str, body: Mapping[str, Any]) -> Body:
        name = (body.get("metadata") or {}).get("name", "?")
        return self._call(
            f"create Job {namespace}/{name}", self._batch.create_namespaced_job, namespace, dict(body)
        )

    def list_jobs(self, namespace: str | None, *, label_selector: str) -> list[Body]:
        if namespace is None:
            result = self._call(
                "list Jobs", self._batch.list_job_for_all_namespaces, label_selector=label_selector
            )
        else:
            result = self._call(
                f"list Jobs in {namespace}",
                self._batch.list_namespaced_job,
                namespace,
                label_selector=label_selector,
            )
        return list(result.get("items") or [])

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Body:
        """A merge patch of a Job (the operator sets ttlSecondsAfterFinished once it has recorded
        the outcome)."""
        return self._call(
            f"patch Job {namespace}/{name}", self._batch.patch_namespaced_job, name, namespace, dict(patch)
        )

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and, in the background, its pods (without a propagation policy they would
        be orphaned); False when it was already gone."""
        try:
            self._call(
                f"delete Job {namespace}/{name}",
                self._batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Background",
            )
        except NotFound:
            return False
        return True

    def list_pods(self, namespace: str | None, *, label_selector: str) -> list[Body]:
        if namespace is None:
            result = self._call(
                "list pods", self._core.list_pod_for_all_namespaces, label_selector=label_selector
            )
        else:
            result = self._call(
                f"list pods in {namespace}",
                self._core.list_namespaced_pod,
                namespace,
                label_selector=label_selector,
            )
        return list(result.get("items") or [])

    # --- Leases (leader election) ----------------------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> Body | None:
        try:
            return self._call(
                f"get Lease {namespace}/{name}", self._coordination.read_namespaced_lease, name, namespace
            )
        except NotFound:
            return None

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> Body:
        name = (body.get("metadata") or {}).get("name", "?")
        return self._call(
            f"create Lease {namespace}/{name}",
            self._coordination.create_namespaced_lease,
            namespace,
            dict(body),
        )

    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> Body:
        """Write the whole Lease; `Conflict` when its resourceVersion changed meanwhile."""
        return self._call(
            f"update Lease {namespace}/{name}",
            self._coordination.replace_namespaced_lease,
            name,
            namespace,
            dict(body),
        )

    # --- Events ---------------------------------------------------------------------------------

    def list_events(self, namespace: str, *, field_selector: str) -> list[Body]:
        """Core v1 Events in a namespace (the operator reads the Job controller's FailedCreate)."""
        result = self._call(
            f"list Events in {namespace}",
            self._core.list_namespaced_event,
            namespace,
            field_selector=field_selector,
        )
        return list(result.get("items") or [])

    def post_event(
        self,
        regarding: ObjectRef,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        component: str = "codebase-mcp-operator",
    ) -> None:
        """Record a Kubernetes Event on an object (`kubectl describe` shows it). Best effort: an
        Event that cannot be written is logged, never raised, so it cannot fail a reconciliation."""
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{regarding.name}.{uuid.uuid4().hex[:16]}",
                "namespace": regarding.namespace,
            },
            "involvedObject": {
                "apiVersion": regarding.api_version,
                "kind": regarding.kind,
                "name": regarding.name,
                "namespace": regarding.namespace,
                "uid": regarding.uid,
            },
            "reason": reason,
            "message": message[:1000],
            "type": "Warning" if warning else "Normal",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": os.environ.get("HOSTNAME", component),
        }
        try:
            self._call(
                f"create Event on {regarding.kind} {regarding.namespace}/{regarding.name}",
                self._core.create_namespaced_event,
                regarding.namespace,
                body,
            )
        except KubernetesError as exc:
            log.warning("could not record Event %s: %s", reason, exc)
